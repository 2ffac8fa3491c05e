package e2e

import (
	"testing"
	"time"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
)

// BenchmarkJoinToFirstKeyframe measures what a user waits for after power-on: from the
// `roombox run` process starting to the first H.264 keyframe arriving at another
// participant already in the room, on loopback against the real livekit-server.
func BenchmarkJoinToFirstKeyframe(b *testing.B) {
	srv := lktest.Start(b)
	bin := roomboxtest.Binary(b)
	token := lktest.Token(b, room, deviceIdentity)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		stateDir := roomboxtest.StateDir(b)
		roomboxtest.MustCLI(b, bin, "provision", "--state-dir", stateDir, "--url", srv.URL, "--token", token)
		sub := joinSubscriber(b, srv.URL, lktest.Token(b, room, "watcher"))
		b.StartTimer()
		d := roomboxtest.Start(b, bin, stateDir)
		testwait.For(b, "the first keyframe", 20*time.Second, func() bool {
			_, _, k := sub.snapshot()
			return !k.IsZero()
		})
		b.StopTimer()
		_, _, k := sub.snapshot()
		total += k.Sub(d.Started)
		d.Stop(b)
		sub.close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/join")
}
