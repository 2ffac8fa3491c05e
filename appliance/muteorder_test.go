package appliance

import (
	"context"
	"roombox/appliance/store"
	"roombox/control"
	"roombox/media"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/hal"
	"roombox/hal/sim"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/testwait"
)

// TestMuteOrder races two changes of one target on a daemon in a real room: a mute is held
// at a stage boundary of its update while an unmute runs to completion, then let go. At
// every stage, once both have returned, all of them hold the last change recorded (the
// unmute): control.Status, the media gate (the audio pipeline's mute flag or the camera flag), the
// LED, state.json and the server's track.
func TestMuteOrder(t *testing.T) {
	const room, identity = "mute-order", "box"
	srv := lktest.Start(t)
	b, err := sim.New(simConfig(media.DefaultConfig))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *daemon, 1)
	h := &holder{}
	api, dir := runDaemon(t, srv, room, identity, Options{board: b.HAL(), hooks: testHooks{
		started: func(d *daemon) { started <- d },
		stage:   h.stage,
	}})
	d := <-started
	stored, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := func(t *testing.T, target control.Target, muted bool) {
		t.Helper()
		if err := api.SetMuted(ctx, target, muted); err != nil {
			t.Fatalf("%s muted=%v: %v", target, muted, err)
		}
	}
	onServer := func(target control.Target) (muted, ok bool) {
		p, err := srv.GetParticipant(ctx, room, identity)
		if err != nil {
			return false, false
		}
		tr := lktest.TrackBySource(p, source(target))
		return tr.GetMuted(), tr != nil
	}

	for _, target := range []control.Target{control.TargetMic, control.TargetCamera} {
		other := control.TargetCamera
		if target == control.TargetCamera {
			other = control.TargetMic
		}
		for _, stage := range []string{stageApplied, stageTold} {
			t.Run(string(target)+"/"+stage, func(t *testing.T) {
				// From both unmuted, each told to the server after a mute.
				for _, tg := range []control.Target{target, other} {
					set(t, tg, true)
					set(t, tg, false)
				}
				testwait.For(t, "both tracks unmuted on the server", 10*time.Second, func() bool {
					m1, ok1 := onServer(target)
					m2, ok2 := onServer(other)
					return ok1 && ok2 && !m1 && !m2
				})

				held := h.hold(stage, target, true)
				first := make(chan error, 1)
				go func() { first <- api.SetMuted(ctx, target, true) }()
				select {
				case <-held.paused:
				case <-time.After(20 * time.Second):
					t.Fatalf("the mute never reached stage %s", stage)
				}
				lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err := api.SetMuted(lctx, target, false)
				cancel()
				close(held.release)
				if err != nil {
					t.Fatalf("the unmute while the mute is held: %v", err)
				}
				select {
				case err := <-first:
					if err != nil {
						t.Fatalf("the held mute: %v", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("the held mute never returned")
				}

				// What the device holds once both have returned: read before the fence below,
				// whose own change would re-apply and re-save everything.
				st, err := api.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				saved, err := stored.LoadState()
				if err != nil {
					t.Fatal(err)
				}
				status, gate, led := st.CameraOff, !d.video.Enabled(), b.LED.On()
				if target == control.TargetMic {
					status, gate = st.MicMuted, d.audio.Muted()
				}
				file := targetMuted(saved, target)

				// A fence: the other target's change is sent after both on the same signal
				// connection, which the server handles in order; once the server shows it,
				// it has handled everything the two changes sent.
				set(t, other, true)
				testwait.For(t, "the server to show the fence", 10*time.Second, func() bool {
					m, ok := onServer(other)
					return ok && m
				})
				server, _ := onServer(target)

				if status || gate || file || server || led != st.MicMuted || st.LED != st.MicMuted {
					t.Errorf("mute held at %q, unmute done: %s muted in control.Status %v, gate %v, state.json %v, server %v; LED %v, control.Status.LED %v, control.Status mic %v (want all unmuted, the LEDs with the mic)",
						stage, target, status, gate, file, server, led, st.LED, st.MicMuted)
				}
			})
		}
	}
}

// holder holds the first change that reaches a stage with a target muted or unmuted, until
// the test lets it go.
type holder struct {
	mu   sync.Mutex
	want *held
}

type held struct {
	stage   string
	target  control.Target
	muted   bool
	paused  chan struct{} // closed when the change is held
	release chan struct{} // closed by the test to let it go
}

func (h *holder) hold(stage string, target control.Target, muted bool) *held {
	w := &held{stage: stage, target: target, muted: muted, paused: make(chan struct{}), release: make(chan struct{})}
	h.mu.Lock()
	h.want = w
	h.mu.Unlock()
	return w
}

// stage is the daemon's testHooks.stage.
func (h *holder) stage(stage string, st store.SavedState) {
	h.mu.Lock()
	w := h.want
	if w == nil || w.stage != stage || targetMuted(st, w.target) != w.muted {
		h.mu.Unlock()
		return
	}
	h.want = nil
	h.mu.Unlock()
	close(w.paused)
	<-w.release
}

func targetMuted(st store.SavedState, t control.Target) bool {
	switch t {
	case control.TargetMic:
		return st.MicMuted
	case control.TargetCamera:
		return st.CameraOff
	}
	return st.SpeakerMuted
}

func source(t control.Target) livekit.TrackSource {
	if t == control.TargetCamera {
		return livekit.TrackSource_CAMERA
	}
	return livekit.TrackSource_MICROPHONE
}

// Button presses act on the state recorded when they are applied, not on one read before:
// an even number of concurrent mic presses leaves the mic as it was, and concurrent volume
// presses each add their step.
func TestConcurrentPressesToggleWhatIsCurrent(t *testing.T) {
	srv := lktest.Start(t)
	started := make(chan *daemon, 1)
	api, _ := runDaemon(t, srv, "presses", "box", Options{board: simParts(t), hooks: testHooks{
		started: func(d *daemon) { started <- d },
	}})
	d := <-started
	ctx := context.Background()
	press := func(button string, n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if err := d.buttonAction(ctx, button); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	press(hal.ButtonMic, 40)
	press(hal.ButtonVolumeDown, 3)
	st, err := api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.MicMuted || st.LED || st.Volume != store.DefaultVolume-3*volumeStep {
		t.Fatalf("after 40 mic presses and 3 volume-down presses: mic muted %v, LED %v, volume %d; want unmuted, off, %d",
			st.MicMuted, st.LED, st.Volume, store.DefaultVolume-3*volumeStep)
	}
}
