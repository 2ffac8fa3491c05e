#!/usr/bin/env bash
# Side by side, in one run: the CPU of publishing 720p30 in three simulcast layers, roombox
# against GStreamer. Called by `make bench-gst` (which installs GStreamer and builds
# bin/roombox first).
#
#   scripts/bench-gst.sh [ROOMBOX_BINARY...]   (default bin/roombox; several: each in turn)
#
#   - GStreamer: videotestsrc (live, a moving ball) at 1280x720@30, a tee into three
#     branches: as is, and videoscale'd to 640x360 and 320x180, each through its own
#     x264enc (ultrafast, zerolatency, ABR at the layer's bitrate, a keyframe every 60
#     frames; x264enc's own thread choice) into a fakesink.
#   - roombox: `roombox run --hal sim` unprovisioned: the sim camera renders its test
#     pattern at 1280x720@30, libyuv scales, three x264 encoders (ultrafast, zerolatency,
#     ABR, the same bitrates and keyframe interval). It also runs its microphone with the
#     audio processing and Opus (~1.5 % of a core, docs/BENCHMARKS.md), which GStreamer does
#     not; nothing is sent (no room), as GStreamer's fakesink. Its PSS here is without pion's
#     buffers: the memory budget's case, in a room, is make bench-mem.
# Each runs alone; after WARMUP seconds its CPU time (user + system, /proc) is measured over
# SECONDS_MEASURED seconds of wall time, and its PSS (smaps_rollup) at the end. Runs ROUNDS
# rounds alternating them. roombox runs as a fresh copy of its binary: how a binary came into
# the page cache decides how much of it this kernel maps (bench-mem.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
WARMUP=${WARMUP:-3}
SECONDS_MEASURED=${SECONDS_MEASURED:-10}
ROUNDS=${ROUNDS:-2}
TICK=$(getconf CLK_TCK)

. scripts/lib.sh

# measure NAME CMD...: start CMD, measure it, stop it, print a line.
measure() {
	local name=$1
	shift
	"$@" >/dev/null 2>&1 &
	local pid=$!
	sleep "$WARMUP"
	kill -0 "$pid" 2>/dev/null || { echo "bench-gst: $name exited early" >&2; exit 1; }
	local t0 c0 t1 c1 mem p a f
	t0=$(date +%s.%N) c0=$(ticks "$pid")
	sleep "$SECONDS_MEASURED"
	t1=$(date +%s.%N) c1=$(ticks "$pid")
	read -r p a f <<<"$(pss "$pid")"
	mem="$p MB (anonymous $a, files $f)"
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	awk -v n="$name" -v c="$((c1 - c0))" -v hz="$TICK" -v t0="$t0" -v t1="$t1" -v m="$mem" \
		'BEGIN { printf "%-24s CPU %5.1f %% of a core (%.2f s of CPU per second)   PSS %s\n", n, 100 * c / hz / (t1 - t0), c / hz / (t1 - t0), m }'
}

enc() { echo "x264enc speed-preset=ultrafast tune=zerolatency pass=cbr bitrate=$1 key-int-max=60 ! fakesink sync=false"; }
gst=(gst-launch-1.0 -q -e videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1
	! tee name=t
	t. ! queue ! $(enc 1700)
	t. ! queue ! videoscale ! video/x-raw,width=640,height=360 ! $(enc 450)
	t. ! queue ! videoscale ! video/x-raw,width=320,height=180 ! $(enc 160))
bins=("$@")
((${#bins[@]})) || bins=(bin/roombox)
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
echo "720p30 in three layers (1280x720 @1.7 Mbit/s, 640x360 @450 kbit/s, 320x180 @160 kbit/s), $(nproc) cores, ${SECONDS_MEASURED} s each after ${WARMUP} s:"
for r in $(seq "$ROUNDS"); do
	measure gstreamer "${gst[@]}"
	for b in "${bins[@]}"; do
		cp "$b" "$state/roombox"
		name=roombox
		((${#bins[@]} == 1)) || name=$b
		measure "$name" "$state/roombox" run --hal sim --video-size 1280x720 --video-layers 3 --state-dir "$state" --http 127.0.0.1:0
	done
done
