package appliance

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"roombox/control"
	"roombox/hal"
	"roombox/internal/testkit/testwait"
	"roombox/localapi"
	"roombox/media"
)

// TestDegraderSteps: three seconds over the load (or hot) step down, ten well under (and
// cool) step back up, one at a time; a sample in between resets both counts.
func TestDegraderSteps(t *testing.T) {
	nan := math.NaN()
	var g degrader
	feed := func(n int, load, celsius float64) (whys []string) {
		for range n {
			if why := g.next(load, celsius); why != "" {
				whys = append(whys, why)
			}
		}
		return whys
	}
	if w := feed(2, 0.9, nan); len(w) != 0 || g.step != stepFull {
		t.Fatalf("two seconds over: %v, step %v; want nothing yet", w, g.step)
	}
	feed(1, 0.5, nan) // resets
	if w := feed(2, 0.9, nan); len(w) != 0 {
		t.Fatalf("over, once more after a reset: %v", w)
	}
	if w := feed(1, 0.9, nan); len(w) != 1 || w[0] != "the encoders fall behind" || g.step != stepHalfRate {
		t.Fatalf("three seconds over: %v, step %v; want half frame rate", w, g.step)
	}
	if w := feed(3, 0.2, 85); len(w) != 1 || w[0] != "the board is hot" || g.step != stepNoTop {
		t.Fatalf("three seconds hot: %v, step %v; want the top layer off", w, g.step)
	}
	if w := feed(6, 0.9, nan); len(w) != 0 || g.step != stepNoTop {
		t.Fatalf("over at the last step: %v, step %v; want it kept", w, g.step)
	}
	if w := feed(10, 0.2, 78); len(w) != 0 {
		t.Fatalf("light load but still warm (78 °C): %v; want no recovery", w)
	}
	if w := feed(9, 0.5, nan); len(w) != 0 {
		t.Fatalf("load between the limits: %v; want no change", w)
	}
	if w := feed(10, 0.2, nan); len(w) != 1 || g.step != stepHalfRate {
		t.Fatalf("ten seconds light and cool: %v, step %v; want one step back", w, g.step)
	}
	if w := feed(10, 0.2, 60); len(w) != 1 || g.step != stepFull {
		t.Fatalf("ten more: %v, step %v; want full", w, g.step)
	}
}

// TestSlowEncoderDegradesVideo: a board whose encoder takes 60 ms a frame (three layers of
// 30 fps need 180 ms per 33 ms frame; the loop is busy all the time) halves the frame rate,
// then turns the top layer off, shown in the status; made fast again, it steps back to everything. The daemon is not provisioned,
// so no room turns layers off meanwhile.
func TestSlowEncoderDegradesVideo(t *testing.T) {
	b := simParts(t)
	var delay atomic.Int64
	delay.Store(int64(60 * time.Millisecond))
	b.EncoderName = "slow"
	b.Encoder = func(cfg hal.EncoderConfig) (hal.VideoEncoder, error) {
		enc, err := media.OpenX264(cfg)
		return sleepyEncoder{enc, &delay}, err
	}
	dir := t.TempDir()
	testwait.Go(t, "Run", 20*time.Second, func(ctx context.Context) error {
		return Run(ctx, Options{board: b, StateDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	})
	api := localapi.Dial(dir)
	video := func() control.VideoStatus {
		st, err := api.Status(context.Background())
		if err != nil || st.Video == nil {
			return control.VideoStatus{}
		}
		return *st.Video
	}
	testwait.For(t, "the top layer off for the slow encoder", 30*time.Second, func() bool {
		v := video()
		return v.Degraded == stepNoTop.String() && len(v.Layers) == 3 && !v.Layers[0].Sent && v.Layers[1].Sent
	})
	delay.Store(0)
	testwait.For(t, "everything back with the encoder fast again", time.Minute, func() bool {
		v := video()
		return v.Degraded == "" && len(v.Layers) == 3 && v.Layers[0].Sent
	})
}

// sleepyEncoder takes at least *d per frame.
type sleepyEncoder struct {
	hal.VideoEncoder
	d *atomic.Int64
}

func (e sleepyEncoder) Encode(f *hal.Frame, key bool) (hal.EncodedFrame, error) {
	time.Sleep(time.Duration(e.d.Load()))
	return e.VideoEncoder.Encode(f, key)
}
