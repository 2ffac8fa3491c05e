//go:build vmlabguest && linux

package guest

import (
	"context"
	"testing"
	"time"

	"roombox/hal/linux/evdev"
	"roombox/hal/linux/v4l2"
)

// The hal/linux packages' own checks, run against the real drivers: the code the daemon uses
// with --hal linux, where the tests above use raw ioctls to prove the drivers themselves.

// TestV4L2CheckCapture captures from vivid through hal/linux/v4l2 in each pixel format it
// converts from without a decoder, checking colour bars, sequence and timestamps.
func TestV4L2CheckCapture(t *testing.T) {
	n := 150
	if testing.Short() {
		n = 30
	}
	for _, f := range []v4l2.PixelFormat{v4l2.NV12, v4l2.YUYV} {
		t.Run(f.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			rep, err := v4l2.CheckCapture(ctx, v4l2.Config{Format: f}, n)
			if err != nil {
				t.Fatalf("%v (%v)", err, rep)
			}
			t.Log(rep)
			t.Logf("figure: hal_v4l2_%s_%dx%d_fps=%.1f frames/s", f, rep.Mode.Width, rep.Mode.Height, rep.FPS())
		})
	}
}

// TestV4L2CheckReplug unplugs vivid (its Disconnect control) under a reading camera and
// expects the hal to notice, retry and recover.
func TestV4L2CheckReplug(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rep, err := v4l2.CheckReplug(ctx, v4l2.Config{}, 500*time.Millisecond)
	if err != nil {
		t.Fatalf("%v (%v)", err, rep)
	}
	t.Log(rep)
}

// TestEvdevCheckUinput types KEY_MICMUTE on a uinput keyboard and expects hal/linux/evdev
// to find the device and report the mic button's press and release, then its unplug.
func TestEvdevCheckUinput(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rep, err := evdev.CheckUinput(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (%s): %d events", rep.Device.Path, rep.Device.Name, len(rep.Events))
	t.Logf("figure: hal_evdev_press_latency=%.2f ms", float64(rep.Latency.Microseconds())/1000)
}
