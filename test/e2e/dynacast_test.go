package e2e

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"roombox/control"
	"roombox/internal/testkit/lkprobetest"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
	"roombox/signaling"
)

// Dynacast (issue 13, must-show 1's last part): with nobody receiving its camera the box
// encodes nothing (its per-layer frame counters, in its status, stop) while the track stays
// published; a subscriber asking for LOW brings the quarter-size layer back alone, starting
// with an IDR. The server decides what is wanted and debounces downgrades (~5 s), so the
// waits are long; each is for a fact the box reports.
func TestDeviceEncodesOnlyLayersSomeoneReceives(t *testing.T) {
	srv := lktest.Start(t)
	bin, stateDir, _ := provisionedDevice(t, srv)
	// Nobody has subscribed: the server says no layer is wanted (~10 s after publishing).
	st := roomboxtest.WaitStatus(t, bin, stateDir, "every layer stopped with nobody watching", time.Minute,
		func(st control.Status) bool { return st.Video != nil && st.Video.Sending() == "" })
	frames := func(st control.Status) map[string]uint64 {
		m := map[string]uint64{}
		for _, l := range st.Video.Layers {
			m[l.RID] = l.Frames
		}
		return m
	}
	stopped := frames(st)
	// A negative needs a window: 3 s of the box's microphone (150 packets), which keeps
	// sending, received by a listener that subscribes to audio alone (it wants no video).
	heard := listenToAudio(t, srv)
	testwait.For(t, "3 s of the box's audio", 30*time.Second, func() bool { return heard() >= 150 })
	st = roomboxtest.MustStatus(t, bin, stateDir)
	if now := frames(st); now["f"] != stopped["f"] || now["h"] != stopped["h"] || now["q"] != stopped["q"] {
		t.Fatalf("with nobody receiving, frames encoded went from %v to %v; want no change", stopped, now)
	}
	if _, published := mutedOnServer(t, srv, "VIDEO"); !published {
		t.Fatal("the camera track was unpublished; dynacast must keep it published")
	}

	// A subscriber at LOW: the quarter layer alone comes back, with an IDR first.
	probe := lkprobetest.Start(t, srv.URL, lktest.Token(t, room, "lkprobe"), "-participant", deviceIdentity, "-quality", "LOW")
	kf, _ := probe.Wait(t, "a keyframe of the LOW layer", 30*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "keyframe" && l.Width == simWidth/4 && l.Height == simHeight/4
	})
	t.Logf("LOW layer back: first keyframe %dx%d", kf.Width, kf.Height)
	st = roomboxtest.WaitStatus(t, bin, stateDir, "the q layer alone sent", time.Minute,
		func(st control.Status) bool { return st.Video.Sending() == "q" })
	t.Logf("layers: %+v, estimate %d bit/s", st.Video.Layers, st.Video.TargetBitrate)
}

// listenToAudio joins the room as a participant that subscribes to audio alone and returns
// how many RTP packets of the box's it has received so far.
func listenToAudio(t *testing.T, srv *lktest.Server) func() int {
	t.Helper()
	var packets atomic.Int64
	var readers sync.WaitGroup
	r := signaling.NewRoom(signaling.RoomOptions{URL: srv.URL, Tokens: signaling.StaticToken(lktest.Token(t, room, "ear")),
		SubscribeAudio: true,
		OnTrack: func(rt *signaling.RemoteTrack) {
			if rt.Identity != deviceIdentity {
				return
			}
			readers.Go(func() {
				for {
					if _, _, err := rt.Track.ReadRTP(); err != nil {
						return
					}
					packets.Add(1)
				}
			})
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }() // owned: waited for in the cleanup
	t.Cleanup(func() { cancel(); <-done; readers.Wait() })
	return func() int { return int(packets.Load()) }
}
