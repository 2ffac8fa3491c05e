#!/usr/bin/env bash
# The daemon's memory in a room: PSS (and CPU) of `roombox run --hal sim` publishing its
# default camera, 720p30 in three simulcast layers, and its microphone (audio processing +
# Opus) into a real livekit-server on loopback, with three viewers (lkprobe, LiveKit's Go
# SDK) asking for LOW, MEDIUM and HIGH, the last also receiving the microphone, so that
# dynacast keeps every layer encoded and pion's send buffers and interceptors are in use.
# Called by `make bench-mem` (which builds bin/roombox, bin/livekit-server and bin/lkprobe).
#
#   scripts/bench-mem.sh [ROOMBOX_BINARY...]   (default bin/roombox)
#
# With several binaries (a build of another commit, say) each runs in turn, ROUNDS rounds
# alternating them, against the same server. Once every layer is sent (`roombox status`),
# after WARMUP seconds (by default 40: pion's NACK history of the smallest layer, ~30 packets
# a second, is full after that) the daemon's CPU time (user + system, /proc) is measured over
# SECONDS_MEASURED seconds of wall time, and its PSS (smaps_rollup, split into anonymous
# memory and mapped files) at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
WARMUP=${WARMUP:-40}
SECONDS_MEASURED=${SECONDS_MEASURED:-10}
ROUNDS=${ROUNDS:-2}
TICK=$(getconf CLK_TCK)
bins=("$@")
((${#bins[@]})) || bins=(bin/roombox)
for b in bin/livekit-server bin/lkprobe "${bins[@]}"; do
	[[ -x $b ]] || { echo "bench-mem: $b is missing; run it through 'make bench-mem'" >&2; exit 1; }
done

. scripts/lib.sh
# free_port: a loopback TCP port nothing listens on (the UDP port beside it is the server's).
free_port() {
	local p
	while p=$((20000 + RANDOM % 20000)); port_in_use "$p"; do :; done
	echo "$p"
}

work=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
livekit_yaml "$port" $((port + 1)) devkey secret warn >"$work/livekit.yaml"
bin/livekit-server --config "$work/livekit.yaml" >"$work/livekit.log" 2>&1 &
lk=$!
pids+=("$lk")
wait_livekit bench-mem "$lk" "$port" "$work/livekit.log"
url=ws://127.0.0.1:$port

# stop PID...: SIGINT, then wait.
stop() {
	local p
	for p in "$@"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "$@"; do wait "$p" 2>/dev/null || true; done
	pids=("$lk")
}

# measure N BINARY: the daemon BINARY in room N with its viewers; prints one line. It runs a
# fresh copy of BINARY: how a binary came into the page cache decides how much of it this
# kernel maps (the same binary read 21.5 MB of mapped files as copied, 28.7 MB as `go build`
# wrote it), so every binary is measured the same way.
measure() {
	local n=$1 name=$2 room=room$1 state=$work/state$1 bin=$work/roombox$1
	mkdir -p "$state"
	cp "$name" "$bin"
	"$bin" provision --state-dir "$state" --url "$url" \
		--token "$(bin/roombox token --api-key devkey --api-secret secret --room "$room" --identity box)" >/dev/null
	"$bin" run --hal sim --state-dir "$state" --http 127.0.0.1:0 >"$work/log$n" 2>&1 &
	local rb=$!
	pids+=("$rb")
	local q probes=() extra
	for q in LOW MEDIUM HIGH; do
		extra=()
		[[ $q == HIGH ]] && extra=(-audio)
		bin/lkprobe -url "$url" -api-key devkey -api-secret secret -room "$room" -identity "viewer-$q" \
			-participant box -quality "$q" "${extra[@]}" >/dev/null 2>&1 &
		probes+=($!)
		pids+=($!)
	done
	local i sent=
	for ((i = 0; i < 120; i++)); do
		sent=$("$bin" status --state-dir "$state" 2>/dev/null | jq -r '[.video.layers[]? | select(.sent) | .rid] | join(",")' || true)
		[[ $sent == f,h,q ]] && break
		kill -0 "$rb" 2>/dev/null || { echo "bench-mem: $name exited; its log:" >&2; tail -n 20 "$work/log$n" >&2; exit 1; }
		sleep 0.5
	done
	[[ $sent == f,h,q ]] || { echo "bench-mem: $name sends '$sent' after 60 s, not f,h,q" >&2; exit 1; }
	sleep "$WARMUP"
	local t0 c0 t1 c1 mem
	t0=$(date +%s.%N) c0=$(ticks "$rb")
	sleep "$SECONDS_MEASURED"
	t1=$(date +%s.%N) c1=$(ticks "$rb") mem=$(pss "$rb")
	sent=$("$bin" status --state-dir "$state" | jq -r '[.video.layers[] | select(.sent) | .rid] | join(",")')
	stop "${probes[@]}" "$rb"
	read -r p a f <<<"$mem"
	rm -f "$bin"
	awk -v n="$name" -v c="$((c1 - c0))" -v hz="$TICK" -v t0="$t0" -v t1="$t1" -v p="$p" -v a="$a" -v f="$f" -v s="$sent" \
		'BEGIN { printf "%-24s CPU %5.1f %% of a core   PSS %5.1f MB (anonymous %.1f, files %.1f)   sent %s%s\n", n, 100 * c / hz / (t1 - t0), p, a, f, s,
			s == "f,h,q" ? "" : " (a layer dropped by the end: not the case measured, repeat)" }'
}

echo "in a room: 720p30 in three layers + microphone to livekit-server, 3 viewers (LOW, MEDIUM, HIGH + audio), $(nproc) cores, ${SECONDS_MEASURED} s each after ${WARMUP} s:"
n=0
for r in $(seq "$ROUNDS"); do
	for b in "${bins[@]}"; do
		measure $((n += 1)) "$b"
	done
done
