// Package controltest has fakes for testing what drives a device: a control.Controller
// without hardware or a room, and a helper that serves it on a LocalAPI socket.
package controltest

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"roombox/appliance/provision"
	"roombox/control"
	"roombox/internal/testkit/testwait"
	"roombox/localapi"
)

// Controller is a control.Controller that keeps its state in memory: the microphone's mute
// state (the LED follows it), the buttons pressed, in order, and the last provisioning it
// accepted. A press of "mic" toggles mute, as the hardware button does. Provision validates
// with control.ValidateProvisioning and stores only what passes; Status reports a provisioned
// fake as connecting to the provisioned room.
//
// The zero value is an unprovisioned, unmuted control. Set Hal and PressErr before first use;
// after that a Controller is safe for concurrent use.
type Controller struct {
	// Hal is the board Status reports; "fake" if empty.
	Hal string
	// PressErr, if not nil, is what every Press returns, without recording the press.
	PressErr error

	mu      sync.Mutex
	muted   bool
	camOff  bool
	deaf    bool
	volume  int
	audio   control.AudioPatch
	video   control.VideoPatch
	presses []string
	p       control.Provisioning
	info    provision.TokenInfo
}

var _ control.Controller = (*Controller)(nil)

// Status reports the fake's state, derived from its fields.
func (c *Controller) Status(context.Context) control.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := control.Status{State: control.StateUnprovisioned.String(), MicMuted: c.muted, LED: c.muted, Hal: c.Hal,
		CameraOff: c.camOff, SpeakerMute: c.deaf, Volume: c.volume}
	audio := c.audio.Apply(control.DefaultAudio)
	st.Audio = &audio
	video := c.video.Apply(control.DefaultVideo)
	st.Video = &control.VideoStatus{Settings: video, Width: video.Width, Height: video.Height, FPS: video.FPS}
	if st.Hal == "" {
		st.Hal = "fake"
	}
	if c.p.URL != "" {
		st.State, st.Provisioned = control.StateConnecting.String(), true
		st.URL, st.Room, st.Identity = c.p.URL, c.info.Room, c.info.Identity
	}
	return st
}

// SetMuted sets a mute state; the LED follows the mic.
func (c *Controller) SetMuted(_ context.Context, t control.Target, muted bool) error {
	if _, err := control.ParseTarget(string(t)); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch t {
	case control.TargetMic:
		c.muted = muted
	case control.TargetCamera:
		c.camOff = muted
	case control.TargetSpeaker:
		c.deaf = muted
	}
	return nil
}

// SetAudio checks p and records it on top of the settings made before.
func (c *Controller) SetAudio(_ context.Context, p control.AudioPatch) error {
	if err := p.Check(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.audio = c.audio.Merge(p)
	return nil
}

// SetVideo checks p and records it on top of the settings made before; the fake camera
// takes them exactly.
func (c *Controller) SetVideo(_ context.Context, p control.VideoPatch) error {
	if err := p.Check(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.video = c.video.Merge(p)
	return nil
}

// SetVolume sets the speaker volume, refusing values outside 0..control.MaxVolume.
func (c *Controller) SetVolume(_ context.Context, v int) error {
	if err := control.ValidVolume(v); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.volume = v
	return nil
}

// Press returns PressErr if set; otherwise it records the press, and a "mic" press toggles mute.
func (c *Controller) Press(_ context.Context, button string) error {
	if c.PressErr != nil {
		return c.PressErr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.presses = append(c.presses, button)
	if button == "mic" {
		c.muted = !c.muted
	}
	return nil
}

// Provision validates p as the device would now and stores it, or returns the validation
// error and keeps what it had.
func (c *Controller) Provision(_ context.Context, p control.Provisioning) error {
	info, err := provision.Validate(p, time.Now())
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.p, c.info = p, info
	return nil
}

// MicMuted reports whether the microphone is muted.
func (c *Controller) MicMuted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.muted
}

// Presses returns the buttons pressed so far, in order.
func (c *Controller) Presses() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.presses)
}

// Provisioning returns the last provisioning accepted, or the zero value if none was.
func (c *Controller) Provisioning() control.Provisioning {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p
}

// ServeLocalAPI serves the LocalAPI for c in dir until the test ends and returns once it
// answers. On cleanup it checks that localapi.Serve returned without error and removed
// its socket.
func ServeLocalAPI(t testing.TB, dir string, c control.Controller) {
	t.Helper()
	// Cleanups run last first: this check runs once localapi.Serve has returned.
	t.Cleanup(func() {
		if _, err := os.Lstat(localapi.SocketPath(dir)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket left behind after shutdown: %v", err)
		}
	})
	srv := testwait.Go(t, "localapi.Serve", 10*time.Second, func(ctx context.Context) error {
		return localapi.Serve(ctx, dir, c, slog.New(slog.DiscardHandler))
	})
	// Wait until it answers.
	cl := localapi.Dial(dir)
	for i := 0; ; i++ {
		_, err := cl.Status(context.Background())
		if err == nil {
			return
		}
		select {
		case <-srv.Done():
			t.Fatalf("localapi.Serve: %v", srv.Err())
		case <-time.After(5 * time.Millisecond):
		}
		if i > 1000 {
			t.Fatalf("LocalAPI never answered: %v", err)
		}
	}
}
