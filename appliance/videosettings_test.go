package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"roombox/appliance/store"
	"roombox/control"
	"roombox/hal"
	"roombox/hal/sim"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
	"roombox/localapi"
	"roombox/media"
)

// layerSizes lists v's layers as WxH, largest first.
func layerSizes(v control.VideoStatus) []string {
	var s []string
	for _, l := range v.Layers {
		s = append(s, fmt.Sprintf("%dx%d", l.Width, l.Height))
	}
	return s
}

// waitCapture waits until the camera runs at want and its layers are sizes.
func waitCapture(t *testing.T, api *localapi.Client, want control.VideoSettings, sizes ...string) control.VideoStatus {
	t.Helper()
	var v control.VideoStatus
	testwait.For(t, fmt.Sprintf("the capture at %dx%d@%d in layers %v", want.Width, want.Height, want.FPS, sizes), 30*time.Second, func() bool {
		var err error
		v, err = api.Video(context.Background())
		return err == nil && v.Width == want.Width && v.Height == want.Height && v.FPS == want.FPS && slices.Equal(layerSizes(v), sizes)
	})
	return v
}

// TestVideoSettings: a change of capture through the LocalAPI is reported at once, and the
// camera, every layer's encoder and the room's track follow at the next frame, frames
// flowing on; a bad change is refused naming the setting; the capture is persisted and
// applied again after a restart.
func TestVideoSettings(t *testing.T) {
	dir := roomboxtest.SocketDir(t)
	d, api, stop := runUnprovisioned(t, dir)
	ctx := t.Context()
	start := control.VideoSettings{Width: 640, Height: 360, FPS: 30} // the sim board's, the run's default
	if v, err := api.Video(ctx); err != nil || v.Settings != start {
		t.Fatalf("at start: %+v (%v), want the settings %+v", v, err, start)
	}
	v0 := waitCapture(t, api, start, "640x360", "320x180", "160x90")
	if len(v0.Modes) != 4 || v0.Modes[3] != (control.VideoSettings{Width: 1920, Height: 1080, FPS: 60}) {
		t.Errorf("the sim camera's modes: %+v, want 640x360 to 1920x1080 at 60 fps", v0.Modes)
	}

	want := control.VideoSettings{Width: 1280, Height: 720, FPS: 15}
	v, err := api.SetVideo(ctx, control.VideoPatch{Width: new(1280), Height: new(720), FPS: new(15)})
	if err != nil || v.Settings != want {
		t.Fatalf("SetVideo = %+v (%v), want the settings %+v", v, err, want)
	}
	v = waitCapture(t, api, want, "1280x720", "640x360", "320x180")
	var announced []string
	for _, l := range d.videoTrack.Layers() {
		announced = append(announced, fmt.Sprintf("%dx%d", l.Layer().Width, l.Layer().Height))
	}
	if !slices.Equal(announced, []string{"320x180", "640x360", "1280x720"}) {
		t.Errorf("the room's track announces %v", announced)
	}
	if v.Layers[0].Bitrate <= 1_000_000 {
		t.Errorf("the full layer's bitrate at 720p is %d, want the 720p share (1.7 Mbit/s)", v.Layers[0].Bitrate)
	}
	frames := v.Layers[0].Frames
	testwait.For(t, "frames encoded at the new capture", 20*time.Second, func() bool {
		v, err := api.Video(ctx)
		return err == nil && v.Layers[0].Frames >= frames+10
	})

	for _, bad := range []struct {
		p   control.VideoPatch
		msg string
	}{
		{control.VideoPatch{Width: new(1920)}, "width and height go together"},
		{control.VideoPatch{FPS: new(0)}, "fps 0"},
		{control.VideoPatch{Width: new(1920), Height: new(1081)}, "height 1081"},
	} {
		if _, err := api.SetVideo(ctx, bad.p); !errors.Is(err, control.ErrBadVideo) || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("SetVideo(%s): %v, want ErrBadVideo naming it", bad.msg, err)
		}
	}
	if v, _ := api.Video(ctx); v.Settings != want {
		t.Errorf("a refused change changed the settings: %+v", v.Settings)
	}
	stop()

	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if saved, err := st.LoadState(); err != nil || !saved.Video.Same(control.VideoPatch{Width: new(1280), Height: new(720), FPS: new(15)}) {
		t.Fatalf("state.json holds video %+v (%v)", saved.Video, err)
	}
	_, api, _ = runUnprovisioned(t, dir)
	waitCapture(t, api, want, "1280x720", "640x360", "320x180")
}

// runWithBoard runs the daemon unprovisioned on b until the test ends, and returns its
// LocalAPI client.
func runWithBoard(t *testing.T, b *hal.Board) *localapi.Client {
	t.Helper()
	dir := roomboxtest.SocketDir(t)
	testwait.Go(t, "Run", 20*time.Second, func(ctx context.Context) error {
		return Run(ctx, Options{board: b, StateDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	})
	api := localapi.Dial(dir)
	testwait.For(t, "the LocalAPI", 20*time.Second, func() bool {
		_, err := api.Status(context.Background())
		return err == nil
	})
	return api
}

// budgetBoard is a sim board at mc whose "hardware" encoder (x264 here) encodes budget
// pixels a second at most.
func budgetBoard(t *testing.T, mc media.Config, budget int) *hal.Board {
	t.Helper()
	s, err := sim.New(simConfig(mc))
	if err != nil {
		t.Fatal(err)
	}
	b := s.HAL()
	b.Encoder, b.EncoderName, b.EncoderBudget = media.OpenX264, "budget", budget
	return b
}

// TestVideoWithinTheEncoderBudget: a hardware encoder with a total budget (bcm2835-codec's
// 1080p30) gets no capture whose layers it cannot carry: a change over it is refused naming
// the pixel rates, one under it is applied; a start over it publishes fewer layers.
func TestVideoWithinTheEncoderBudget(t *testing.T) {
	const budget = 40_000_000 // pixels a second: 720p30 in three layers is 36.3 M
	api := runWithBoard(t, budgetBoard(t, media.DefaultConfig, budget))
	ctx := t.Context()
	_, err := api.SetVideo(ctx, control.VideoPatch{Width: new(1920), Height: new(1080)})
	if !errors.Is(err, control.ErrBadVideo) || !strings.Contains(err.Error(), "81.6 Mpixel/s") || !strings.Contains(err.Error(), "(40.0)") {
		t.Errorf("1080p30 in three layers: %v, want ErrBadVideo naming 81.6 Mpixel/s against 40.0", err)
	}
	if _, err := api.SetVideo(ctx, control.VideoPatch{Width: new(1920), Height: new(1080), FPS: new(12)}); err != nil {
		t.Fatalf("1080p12 (32.7 Mpixel/s): %v", err)
	}
	waitCapture(t, api, control.VideoSettings{Width: 1920, Height: 1080, FPS: 12}, "1920x1080", "960x540", "480x270")

	// 720p30: three layers are 36.3 M, two 34.6 M, one 27.6 M.
	api = runWithBoard(t, budgetBoard(t, media.Config{Width: 1280, Height: 720, FPS: 30}, 30_000_000))
	waitCapture(t, api, control.VideoSettings{Width: 1280, Height: 720, FPS: 30}, "1280x720")
}
