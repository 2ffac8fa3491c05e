# Shell functions the scripts here share; sourced, not run.

# port_in_use PORT: something listens on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_get_ok PORT: true if http://127.0.0.1:PORT/ answers 200 (bash /dev/tcp; no curl needed).
http_get_ok() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
		IFS= read -r -t 2 status <&3 || exit 1
		[[ $status == "HTTP/1."?" 200"* ]]
	) 2>/dev/null
}

# livekit_yaml PORT UDP_PORT KEY SECRET LEVEL: a livekit-server config for loopback only: a
# development server with one API key, ICE over UDP alone (livekit binds rtc.tcp_port on
# every address, so it is off), logging at LEVEL.
livekit_yaml() {
	cat <<YAML
port: $1
bind_addresses: [127.0.0.1]
development: true
keys:
  $3: $4
logging:
  level: $5
rtc:
  tcp_port: 0
  udp_port: $2
  node_ip: 127.0.0.1
  use_external_ip: false
  enable_loopback_candidate: true
  ips:
    includes: [127.0.0.1/32]
YAML
}

# wait_livekit NAME PID PORT LOG: wait until livekit-server (PID) answers on PORT; if it exits
# or 30 s pass first, print the last lines of LOG and exit 1 (NAME: the script, for the message).
wait_livekit() {
	local i
	for ((i = 0; ; i++)); do
		http_get_ok "$3" && return 0
		if ! kill -0 "$2" 2>/dev/null || ((i >= 300)); then
			echo "$1: livekit-server did not come up; last lines of $4:" >&2
			tail -n 30 "$4" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# ticks PID: user + system clock ticks of PID so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# pss PID: PID's proportional set size, its anonymous and its file-backed part, in MB.
pss() { awk '/^Pss:/ {p = $2} /^Pss_Anon:/ {a = $2} /^Pss_File:/ {f = $2} END {printf "%.1f %.1f %.1f", p / 1024, a / 1024, f / 1024}' "/proc/$1/smaps_rollup"; }
