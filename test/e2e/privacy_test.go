package e2e

import (
	"context"
	"roombox/control"
	"strings"
	"testing"
	"time"

	"roombox/hal/sim"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/previewtest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
)

// Privacy, measured on what leaves the device: the preview (the device's own encoded
// samples, straight from it, no SFU in between) is decoded and checked for the mic's 440 Hz
// tone and the camera's stamped pattern. With the mic muted and the camera off there must
// be packets, yet no tone energy and no pattern pixel: right after the command, right after
// a daemon restart (from its very first packet), and after a rejoin; the room (a second
// participant through the SFU) must not get them either. Unmuting brings both back, which
// shows the measurement can see them. The box runs its default camera, 720p in three
// layers; the preview is the full one.
func TestPrivacyWhatLeavesTheDevice(t *testing.T) {
	srv := lktest.Start(t)
	bin := roomboxtest.Binary(t)
	stateDir := roomboxtest.StateDir(t)
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--url", srv.URL, "--token", lktest.Token(t, room, deviceIdentity))
	d := roomboxtest.Start(t, bin, stateDir)
	testwait.For(t, "the device in the room", 20*time.Second, func() bool {
		return roomboxtest.StatusIs(bin, stateDir, func(st control.Status) bool { return st.State == "in-room" })
	})

	// Before: the preview carries the tone and the pattern.
	v := watchPreview(t, d)
	expectLeaving(t, v, time.Time{}, true)

	roomboxtest.MustCLI(t, bin, "mute", "--state-dir", stateDir)
	roomboxtest.MustCLI(t, bin, "mute", "camera", "--state-dir", stateDir)
	muted := time.Now()
	testwait.For(t, "the server to report mic and camera muted", 5*time.Second, func() bool {
		return bothMuted(t, srv)
	})
	if st := roomboxtest.MustStatus(t, bin, stateDir); !st.MicMuted || !st.CameraOff || !st.LED {
		t.Fatalf("status after muting: %+v", st)
	}
	expectLeaving(t, v, muted.Add(muteBudget), false)
	v.Close()

	// A daemon restart: muted from its first packet.
	d.Stop(t)
	d = roomboxtest.Start(t, bin, stateDir)
	v = watchPreview(t, d)
	expectLeaving(t, v, time.Time{}, false)
	testwait.For(t, "the restarted device in the room, tracks muted", 20*time.Second, func() bool {
		return roomboxtest.StatusIs(bin, stateDir, func(st control.Status) bool { return st.State == "in-room" }) &&
			bothMuted(t, srv)
	})

	// A rejoin after the server is killed: still nothing leaves, and the room, listening
	// from before the rejoin, gets no tone and no pattern.
	srv.Kill()
	srv.Restart()
	rejoined := time.Now()
	testwait.For(t, "the device back in the room", 30*time.Second, func() bool {
		return roomboxtest.StatusIs(bin, stateDir, func(st control.Status) bool { return st.State == "in-room" && st.Joins == 2 })
	})
	sub := joinSubscriber(t, srv.URL, lktest.Token(t, room, "watcher"))
	testwait.For(t, "the server to report both tracks muted after the rejoin", 10*time.Second, func() bool {
		return bothMuted(t, srv)
	})
	expectLeaving(t, v, rejoined, false)
	time.Sleep(2 * time.Second) // what the room gets over two more seconds
	aus, audio, _ := sub.snapshot()
	for _, w := range audio {
		if w.toneDBFS > silentDBFS {
			t.Fatalf("the room heard the tone at %.1f dBFS while the mic was muted", w.toneDBFS)
		}
	}
	pics, err := decodePictures(aus)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pics {
		if _, err := sim.DecodeStamp(p.gray, p.width, p.width, p.height); err == nil {
			t.Fatalf("the room saw a %dx%d camera picture while the camera was off", p.width, p.height)
		}
		if lo, hi := lumaSpan(p.gray); hi-lo > 4 {
			t.Fatalf("the room saw a %dx%d picture of luma %d..%d while the camera was off, want uniform black", p.width, p.height, lo, hi)
		}
	}
	t.Logf("the room got %d audio packets and %d video access units (%d pictures decoded, all black) while muted", len(audio), len(aus), len(pics))

	// Unmuted: tone and pattern leave again.
	roomboxtest.MustCLI(t, bin, "unmute", "--state-dir", stateDir)
	roomboxtest.MustCLI(t, bin, "unmute", "camera", "--state-dir", stateDir)
	expectLeaving(t, v, time.Now().Add(muteBudget), true)
	v.Close()
}

// watchPreview signs in to d's control page with the setup code and opens a preview.
func watchPreview(t *testing.T, d *roomboxtest.Daemon) *previewtest.Viewer {
	t.Helper()
	base, code := d.PageURL(t), d.SetupCode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := previewtest.Login(ctx, strings.TrimSuffix(base, "/"), code)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	select {
	case <-v.Connected():
	case <-ctx.Done():
		t.Fatal("the preview never connected")
	}
	return v
}

// previewSince waits for three seconds' worth of audio packets and at least two pictures
// sent after since and returns them decoded. Pictures are decoded only once the audio is
// there: decoding is the costly part.
func previewSince(t *testing.T, v *previewtest.Viewer, since time.Time) ([]previewtest.VideoFrame, []previewtest.AudioChunk) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var lastErr error
	for {
		audio, err := v.Audio()
		if err != nil {
			t.Fatal(err)
		}
		if audio = audioSince(audio, since); len(audio) >= 150 {
			frames, err := v.VideoFrames(simWidth, simHeight)
			if frames = framesSince(frames, since); err == nil && len(frames) >= 2 {
				return frames, audio
			}
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 3 s of audio and 2 pictures after %s within 20 s (%d audio packets; %v)", since.Format("15:04:05.000"), len(audio), lastErr)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// expectLeaving waits for three seconds' worth of audio packets and at least two pictures
// sent after since, then checks them all: with on, every picture carries the camera's stamp
// and the tone is there; with on false, no picture carries a stamp or any pattern (uniform
// luma), and no audio packet carries tone energy.
func expectLeaving(t *testing.T, v *previewtest.Viewer, since time.Time, on bool) {
	t.Helper()
	frames, audio := previewSince(t, v, since)
	loud := 0
	for _, c := range audio {
		if level := sim.ToneDBFS(c.PCM, 440, 48000); level > silentDBFS {
			if !on {
				t.Fatalf("audio packet at %s carries the tone at %.1f dBFS with the mic muted", c.At.Format("15:04:05.000"), level)
			}
			loud++
		}
	}
	if on && loud < len(audio)/2 {
		t.Fatalf("only %d of %d audio packets carry the tone with the mic on", loud, len(audio))
	}
	for _, f := range frames {
		_, err := sim.DecodeStamp(f.Gray, f.Width, f.Width, f.Height)
		switch {
		case on && err != nil:
			t.Fatalf("picture at %s has no camera stamp with the camera on: %v", f.At.Format("15:04:05.000"), err)
		case !on && err == nil:
			t.Fatalf("picture at %s carries a camera stamp with the camera off", f.At.Format("15:04:05.000"))
		case !on:
			lo, hi := lumaSpan(f.Gray)
			if hi-lo > 4 {
				t.Fatalf("picture at %s has luma %d..%d with the camera off, want uniform black", f.At.Format("15:04:05.000"), lo, hi)
			}
		}
	}
	t.Logf("checked %d audio packets and %d pictures (on=%v)", len(audio), len(frames), on)
}

func audioSince(a []previewtest.AudioChunk, t0 time.Time) []previewtest.AudioChunk {
	for i, c := range a {
		if !c.At.Before(t0) {
			return a[i:]
		}
	}
	return nil
}

func framesSince(f []previewtest.VideoFrame, t0 time.Time) []previewtest.VideoFrame {
	for i, v := range f {
		if !v.At.Before(t0) {
			return f[i:]
		}
	}
	return nil
}

func lumaSpan(y []byte) (lo, hi byte) {
	lo, hi = 255, 0
	for _, v := range y {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// bothMuted reports whether the server lists the device's mic and camera as muted.
func bothMuted(t testing.TB, srv *lktest.Server) bool {
	a, okA := mutedOnServer(t, srv, "AUDIO")
	v, okV := mutedOnServer(t, srv, "VIDEO")
	return a && okA && v && okV
}
