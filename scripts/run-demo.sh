#!/usr/bin/env bash
# Starts a local livekit-server and the simulated roombox, both on loopback only.
# Called by `make run` (which builds bin/roombox and bin/livekit-server first).
# Ctrl-C stops both. State, config and the server log live in .run/.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=.run
ROOM=${ROOM:-demo}
IDENTITY=${IDENTITY:-roombox-demo}
LIVEKIT_PORT=${LIVEKIT_PORT:-7880}
LIVEKIT_UDP_PORT=${LIVEKIT_UDP_PORT:-7882}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
API_KEY=devkey
API_SECRET=secret

for b in bin/livekit-server bin/roombox; do
	[[ -x $b ]] || { echo "run-demo: $b is missing; run it through 'make run'" >&2; exit 1; }
done

. scripts/lib.sh

if port_in_use "$LIVEKIT_PORT"; then
	echo "run-demo: 127.0.0.1:$LIVEKIT_PORT is already in use (another livekit-server or make run?)" >&2
	exit 1
fi
if port_in_use "${HTTP_ADDR##*:}"; then
	echo "run-demo: port ${HTTP_ADDR##*:} for the control page is already in use" >&2
	exit 1
fi

mkdir -p "$RUN_DIR/state"
livekit_yaml "$LIVEKIT_PORT" "$LIVEKIT_UDP_PORT" "$API_KEY" "$API_SECRET" info >"$RUN_DIR/livekit.yaml"

lk_pid= rb_pid=

# stop PID: SIGTERM, again after 5 s (livekit then stops without waiting for participants),
# SIGKILL after 5 s more.
stop() {
	local pid=$1 sig i
	for sig in TERM TERM KILL; do
		kill -s "$sig" "$pid" 2>/dev/null || break
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break 2
			sleep 0.1
		done
	done
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	trap - INT TERM
	[[ -n $rb_pid ]] && stop "$rb_pid"
	[[ -n $lk_pid ]] && { echo "run-demo: stopping livekit-server"; stop "$lk_pid"; }
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "run-demo: starting livekit-server on ws://127.0.0.1:$LIVEKIT_PORT (log: $RUN_DIR/livekit.log)"
bin/livekit-server --config "$RUN_DIR/livekit.yaml" >"$RUN_DIR/livekit.log" 2>&1 &
lk_pid=$!
wait_livekit run-demo "$lk_pid" "$LIVEKIT_PORT" "$RUN_DIR/livekit.log"
sleep 0.2 # livekit ignores a SIGTERM in the first 100 ms after it serves

token=$(bin/roombox token --api-key "$API_KEY" --api-secret "$API_SECRET" --room "$ROOM" --identity "$IDENTITY")
bin/roombox provision --state-dir "$RUN_DIR/state" --url "ws://127.0.0.1:$LIVEKIT_PORT" --token "$token"

echo "run-demo: control page: http://$HTTP_ADDR/   (room '$ROOM' on ws://127.0.0.1:$LIVEKIT_PORT; Ctrl-C stops)"
bin/roombox run --hal sim --state-dir "$RUN_DIR/state" --http "$HTTP_ADDR" &
rb_pid=$!
wait "$rb_pid"
