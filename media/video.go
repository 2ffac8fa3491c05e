// Package media turns the board's capture into encoded samples: camera frames through an
// H.264 encoder, microphone PCM through Opus, each written as pion media.Samples. Pipelines
// are pull loops owned by their caller (Run blocks until its context ends); their controls
// (keyframe, bitrate, camera enable, mute) are atomics read once per frame, so they are
// safe from any goroutine and take effect on the next frame.
package media

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4/pkg/media"

	"roombox/hal"
)

// SampleWriter takes encoded samples; pion's TrackLocalStaticSample is one.
type SampleWriter interface {
	WriteSample(media.Sample) error
}

// Video reads a camera, encodes and writes samples.
type Video struct {
	cam hal.Camera
	enc hal.VideoEncoder
	out SampleWriter

	keyframe atomic.Bool
	bitrate  atomic.Int64 // pending SetBitrate, 0 when none
	enabled  atomic.Bool

	frame hal.Frame
	black hal.Frame // sent instead of the camera's frames while the camera is off
	off   int       // frames captured since the camera was switched off
	last  time.Time // capture time of the last frame sent
}

// NewVideo returns an enabled video pipeline; the first frame it sends is an IDR.
func NewVideo(cam hal.Camera, enc hal.VideoEncoder, out SampleWriter) *Video {
	v := &Video{cam: cam, enc: enc, out: out}
	v.enabled.Store(true)
	v.keyframe.Store(true)
	return v
}

// RequestKeyframe makes the next frame sent an IDR.
func (v *Video) RequestKeyframe() { v.keyframe.Store(true) }

// SetBitrate asks the encoder for bps bits per second from the next frame.
func (v *Video) SetBitrate(bps int) error {
	if bps <= 0 {
		return fmt.Errorf("media: video bitrate %d must be positive", bps)
	}
	v.bitrate.Store(int64(bps))
	return nil
}

// SetEnabled turns the camera on or off. While off, no camera frame reaches the encoder:
// a black frame is sent instead, once a second, so receivers show black rather than the
// last picture. The first frame after a switch either way is an IDR.
func (v *Video) SetEnabled(on bool) {
	if v.enabled.Swap(on) != on {
		v.keyframe.Store(true)
	}
}

// Enabled reports whether the camera is on: the next frame encoded is the camera's.
func (v *Video) Enabled() bool { return v.enabled.Load() }

// Run captures, encodes and writes until ctx ends (then it returns nil) or the camera,
// encoder or writer fails. A sample's Duration is the capture interval since the
// previous sample sent (1/FPS for the first).
func (v *Video) Run(ctx context.Context) error {
	for {
		if err := v.next(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("media: video: %w", err)
		}
	}
}

// next captures one frame and encodes and writes it, or, while the camera is off, a
// black frame once a second.
func (v *Video) next(ctx context.Context) error {
	if err := v.cam.ReadFrame(ctx, &v.frame); err != nil {
		return err
	}
	src := &v.frame
	if v.enabled.Load() {
		v.off = 0
	} else {
		if v.off++; (v.off-1)%max(v.cam.Format().FPS, 1) != 0 {
			return nil
		}
		src = v.blackFrame()
	}
	if bps := v.bitrate.Swap(0); bps != 0 {
		if err := v.enc.SetBitrate(int(bps)); err != nil {
			return err
		}
	}
	ef, err := v.enc.Encode(src, v.keyframe.Swap(false))
	if err != nil || len(ef.Data) == 0 {
		return err
	}
	d := time.Second / time.Duration(max(v.cam.Format().FPS, 1))
	if !v.last.IsZero() && v.frame.Captured.After(v.last) {
		d = v.frame.Captured.Sub(v.last)
	}
	v.last = v.frame.Captured
	if err := v.out.WriteSample(media.Sample{Data: ef.Data, Duration: d}); err != nil {
		return fmt.Errorf("write sample: %w", err)
	}
	return nil
}

// blackFrame returns a black picture (limited-range Y 16, U and V 128) the size of the
// camera's frame, carrying its capture time. It is filled only when its size changes.
func (v *Video) blackFrame() *hal.Frame {
	b, f := &v.black, &v.frame
	if b.Width != f.Width || b.Height != f.Height {
		b.Ensure(f.Width, f.Height)
		fill(b.Y, 16)
		fill(b.U, 128)
		fill(b.V, 128)
	}
	b.Seq, b.Captured = 0, f.Captured
	return b
}

func fill(p []byte, v byte) {
	for i := range p {
		p[i] = v
	}
}

// HandleRTCP takes the RTCP the SFU sent about this video's track and asks for a
// keyframe on every Picture Loss Indication or Full Intra Request. Safe from any goroutine.
func (v *Video) HandleRTCP(pkts []rtcp.Packet) {
	for _, p := range pkts {
		switch p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			v.RequestKeyframe()
		}
	}
}
