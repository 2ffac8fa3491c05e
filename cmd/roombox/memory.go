package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is the daemon's GOGC: a collection once the heap has grown by a quarter of what
// is live, not by all of it (the runtime's 100). Capture, scaling, encoding and the audio
// chain allocate nothing per frame; in a room pion allocates per packet, about 0.6 MB/s at
// 720p30 in three layers over a live heap of ~9 MB. Collecting every ~3.5 s instead of every
// ~15 s costs ~5 ms of CPU each (GODEBUG=gctrace=1), 0.15 % of a core, for a heap that peaks
// several MB lower (docs/BENCHMARKS.md, make bench-mem). A GOGC in the environment (a
// developer, the systemd unit) is left alone.
const gcPercent = 25

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
