// Package media turns the board's capture into encoded samples: camera frames through an
// H.264 encoder, microphone PCM through Opus, each written as pion media.Samples. Pipelines
// are pull loops owned by their caller (Run blocks until its context ends); their controls
// (keyframe, bitrate, camera enable, mute) are atomics read once per frame, so they are
// safe from any goroutine and take effect on the next frame.
package media

import (
	"context"
	"errors"
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

// MaxVideoLayers is how many layers a Video encodes at most: simulcast's f, h and q.
const MaxVideoLayers = 3

// Video reads a camera once per frame and encodes it in 1 to 3 layers (simulcast), each
// at its own size by its own encoder into its own sample writer.
type Video struct {
	cam    hal.Camera
	open   func(hal.EncoderConfig) (hal.VideoEncoder, error)
	layers []VideoLayer

	reformat atomic.Pointer[Reformat] // pending Reconfigure, applied by Run

	enabled atomic.Bool  // the camera: off sends black, see SetEnabled
	divisor atomic.Int64 // encode every n-th captured frame
	busy    atomic.Int64 // nanoseconds spent scaling and encoding, see Busy

	frame    hal.Frame
	black    hal.Frame // sent instead of the camera's frames while the camera is off
	off      int       // frames captured since the camera was switched off
	captured uint64    // frames captured while the camera is on, for the divisor
}

// VideoLayer is one layer of a Video. Its controls are safe from any goroutine and take
// effect on the next frame.
type VideoLayer struct {
	cfg    atomic.Pointer[LayerConfig] // replaced by Reconfigure on Run's goroutine, read from any
	enc    hal.VideoEncoder
	scaler *Scaler // nil for a layer at the camera's size

	keyframe atomic.Bool
	bitrate  atomic.Int64 // pending SetBitrate, 0 when none
	enabled  atomic.Bool
	encoded  atomic.Uint64

	skipped bool      // the loop passed this layer by (disabled) since it last encoded it
	last    time.Time // capture time of the last frame sent
}

// NewVideo returns an enabled video pipeline over cam with one layer per config, largest
// first (SimulcastLayers gives them so): a layer at the camera's size is encoded as
// captured, each other is scaled from the nearest larger layer encoded in the same frame.
// Each layer's encoder is opened by open (hal.Board.Encoder, OpenX264) at the layer's size
// and bitrate and the camera's rate; the Video owns them (Close). The first frame of every
// layer is an IDR.
func NewVideo(cam hal.Camera, open func(hal.EncoderConfig) (hal.VideoEncoder, error), layers []LayerConfig) (*Video, error) {
	if len(layers) < 1 || len(layers) > MaxVideoLayers {
		return nil, fmt.Errorf("media: video: %d layers, want 1 to %d", len(layers), MaxVideoLayers)
	}
	f := cam.Format()
	v := &Video{cam: cam, open: open, layers: make([]VideoLayer, len(layers))}
	for i, c := range layers {
		if c.Out == nil {
			return nil, fmt.Errorf("media: video layer %d (%q) has no sample writer", i, c.RID)
		}
	}
	news, err := v.openLayers(f, layers)
	if err != nil {
		return nil, err
	}
	for i := range v.layers {
		l := &v.layers[i]
		c := layers[i] // the caller's slice is its own
		l.cfg.Store(&c)
		l.enc, l.scaler = news[i].enc, news[i].scaler
		l.enabled.Store(true)
		l.keyframe.Store(true)
	}
	v.enabled.Store(true)
	v.divisor.Store(1)
	return v, nil
}

// layerCodec is what a layer encodes with at one configuration.
type layerCodec struct {
	enc    hal.VideoEncoder
	scaler *Scaler // nil at the camera's size
}

// openLayers checks layers against the camera's format f and opens an encoder (and a
// scaler, below f's size) for each; on an error it closes those it opened.
func (v *Video) openLayers(f hal.VideoFormat, layers []LayerConfig) ([]layerCodec, error) {
	out := make([]layerCodec, 0, len(layers))
	fail := func(err error) ([]layerCodec, error) {
		for _, c := range out {
			err = errors.Join(err, c.enc.Close())
		}
		return nil, err
	}
	for i, c := range layers {
		var lc layerCodec
		switch {
		case c.Width > f.Width || c.Height > f.Height || i > 0 && (c.Width > layers[i-1].Width || c.Height > layers[i-1].Height):
			return fail(fmt.Errorf("media: video layer %d (%q) is %dx%d: layers go from the camera's %dx%d down", i, c.RID, c.Width, c.Height, f.Width, f.Height))
		case c.Width != f.Width || c.Height != f.Height:
			s, err := NewScaler(c.Width, c.Height)
			if err != nil {
				return fail(err)
			}
			lc.scaler = s
		}
		enc, err := v.open(hal.EncoderConfig{Width: c.Width, Height: c.Height, FPS: f.FPS, Bitrate: c.Bitrate})
		if err != nil {
			return fail(fmt.Errorf("media: video layer %d (%q): %w", i, c.RID, err))
		}
		lc.enc = enc
		out = append(out, lc)
	}
	return out, nil
}

// Reformat is a change of a Video's capture (Reconfigure).
type Reformat struct {
	// Format is asked of the camera, which may take a near mode of its own.
	Format hal.VideoFormat
	// Layers gives each layer's size and bitrate at the format the camera took, largest
	// first, as many as the Video has (RIDs and writers stay).
	Layers func(hal.VideoFormat) ([]LayerConfig, error)
	// Done is called on Run's goroutine with the format in force and the layers' configs,
	// and the error if the change failed (the capture then stays as it was).
	Done func(hal.VideoFormat, []LayerConfig, error)
}

// Reconfigure changes the capture from the next frame Run reads: the camera's mode (a
// camera that can change it, hal.FormatSetter), every layer's size and bitrate, and so
// their encoders, reopened. Every layer starts again with an IDR. The latest call wins if
// Run has not taken the one before.
func (v *Video) Reconfigure(r Reformat) { v.reformat.Store(&r) }

// reconfigure applies r, from Run's goroutine, between frames.
func (v *Video) reconfigure(ctx context.Context, r *Reformat) {
	old := v.cam.Format()
	f, err := old, error(nil)
	setter, canSet := v.cam.(hal.FormatSetter)
	switch {
	case r.Format == old:
	case canSet:
		f, err = setter.SetFormat(ctx, r.Format)
	default:
		err = fmt.Errorf("media: video: the camera cannot change its mode %dx%d@%d", old.Width, old.Height, old.FPS)
	}
	if err == nil {
		err = v.reopen(f, r.Layers)
	}
	if err != nil && f != old {
		if _, berr := setter.SetFormat(ctx, old); berr != nil {
			err = errors.Join(err, fmt.Errorf("media: video: back to %dx%d@%d: %w", old.Width, old.Height, old.FPS, berr))
		}
	}
	cfgs := make([]LayerConfig, len(v.layers))
	for i := range v.layers {
		cfgs[i] = v.layers[i].Config()
	}
	r.Done(v.cam.Format(), cfgs, err)
}

// reopen opens every layer at the configs plan gives for f, then closes the old encoders;
// on an error the old ones stay.
func (v *Video) reopen(f hal.VideoFormat, plan func(hal.VideoFormat) ([]LayerConfig, error)) error {
	cfgs, err := plan(f)
	if err != nil {
		return err
	}
	if len(cfgs) != len(v.layers) {
		return fmt.Errorf("media: video: %d layers planned for a video of %d", len(cfgs), len(v.layers))
	}
	for i := range cfgs {
		old := v.layers[i].Config()
		cfgs[i].RID, cfgs[i].Out = old.RID, old.Out
	}
	news, err := v.openLayers(f, cfgs)
	if err != nil {
		return err
	}
	var errs []error
	for i := range v.layers {
		l := &v.layers[i]
		errs = append(errs, l.enc.Close())
		l.cfg.Store(&cfgs[i]) // cfgs is this call's
		l.enc, l.scaler = news[i].enc, news[i].scaler
		l.bitrate.Store(0) // a rate asked for the old size
		l.keyframe.Store(true)
	}
	return errors.Join(errs...)
}

// Close closes the layers' encoders; call it after Run has returned.
func (v *Video) Close() error {
	var errs []error
	for i := range v.layers {
		if l := &v.layers[i]; l.enc != nil {
			errs = append(errs, l.enc.Close())
			l.enc = nil
		}
	}
	return errors.Join(errs...)
}

// Layers is how many layers v encodes.
func (v *Video) Layers() int { return len(v.layers) }

// Layer returns layer i (0 is the largest), for its per-layer controls.
func (v *Video) Layer(i int) *VideoLayer { return &v.layers[i] }

// RequestKeyframe makes the next frame of every layer an IDR.
func (v *Video) RequestKeyframe() {
	for i := range v.layers {
		v.layers[i].RequestKeyframe()
	}
}

// SetBitrate shares bps among the layers in the proportions they were configured with
// (all of it, with one layer), from the next frame each encodes.
func (v *Video) SetBitrate(bps int) error {
	if bps <= 0 {
		return fmt.Errorf("media: video bitrate %d must be positive", bps)
	}
	var sum int64
	for i := range v.layers {
		sum += int64(v.layers[i].Config().Bitrate)
	}
	for i := range v.layers {
		l := &v.layers[i]
		share := int64(bps) / int64(len(v.layers))
		if sum > 0 {
			share = int64(bps) * int64(l.Config().Bitrate) / sum
		}
		if err := l.SetBitrate(int(max(share, 1))); err != nil {
			return err
		}
	}
	return nil
}

// SetEnabled turns the camera on or off. While off, no camera frame reaches an encoder:
// a black frame is sent on every enabled layer instead, once a second, so receivers show
// black rather than the last picture. The first frame after a switch either way is an IDR.
func (v *Video) SetEnabled(on bool) {
	if v.enabled.Swap(on) != on {
		v.RequestKeyframe()
	}
}

// Enabled reports whether the camera is on: the next frame encoded is the camera's.
func (v *Video) Enabled() bool { return v.enabled.Load() }

// SetFrameRateDivisor makes the camera's frames encoded one in n (n >= 1; 1, every frame,
// is the default), to shed CPU and bits. The encoders keep the rate they were opened at,
// so each layer then spends about 1/n of its bitrate; raise it with SetBitrate to keep it.
func (v *Video) SetFrameRateDivisor(n int) error {
	if n < 1 {
		return fmt.Errorf("media: frame rate divisor %d must be 1 or more", n)
	}
	v.divisor.Store(int64(n))
	return nil
}

// Busy is the time Run has spent scaling and encoding so far. Its growth over a stretch of
// wall time is the share of it the encoders need: near 1, frames wait for the encoders and
// arrive late (a slow board, or a busy one).
func (v *Video) Busy() time.Duration { return time.Duration(v.busy.Load()) }

// Config is the layer's configuration: as NewVideo was given it, or the last Reconfigure.
func (l *VideoLayer) Config() LayerConfig { return *l.cfg.Load() }

// SetEnabled turns the layer on or off (dynacast: off while no subscriber wants it). An
// off layer is neither scaled nor encoded; its first frame back is an IDR.
func (l *VideoLayer) SetEnabled(on bool) { l.enabled.Store(on) }

// Enabled reports whether the layer is encoded.
func (l *VideoLayer) Enabled() bool { return l.enabled.Load() }

// Encoded counts the frames encoded on this layer, for metrics.
func (l *VideoLayer) Encoded() uint64 { return l.encoded.Load() }

// RequestKeyframe makes the layer's next frame an IDR.
func (l *VideoLayer) RequestKeyframe() { l.keyframe.Store(true) }

// SetBitrate asks the layer's encoder for bps bits per second from its next frame.
func (l *VideoLayer) SetBitrate(bps int) error {
	if bps <= 0 {
		return fmt.Errorf("media: video bitrate %d must be positive", bps)
	}
	l.bitrate.Store(int64(bps))
	return nil
}

// HandleRTCP takes the RTCP the SFU sent about this layer's stream (its SSRC) and asks for
// a keyframe on every Picture Loss Indication or Full Intra Request.
func (l *VideoLayer) HandleRTCP(pkts []rtcp.Packet) {
	for _, p := range pkts {
		switch p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			l.RequestKeyframe()
		}
	}
}

// Run captures, encodes and writes until ctx ends (then it returns nil) or the camera, an
// encoder or a writer fails. A sample's Duration is the capture interval since the
// previous sample sent on its layer (1/FPS for the first).
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

// next captures one frame and encodes it on every enabled layer, or, while the camera is
// off, a black frame once a second. The camera is read even when no layer is enabled (or
// the divisor skips the frame): that keeps its capture queue drained, so the first frame
// encoded when a layer comes back is a fresh one, not one that waited in the queue.
func (v *Video) next(ctx context.Context) error {
	if r := v.reformat.Swap(nil); r != nil {
		v.reconfigure(ctx, r)
	}
	if err := v.cam.ReadFrame(ctx, &v.frame); err != nil {
		return err
	}
	start := time.Now()
	defer func() { v.busy.Add(int64(time.Since(start))) }()
	src := &v.frame
	if v.enabled.Load() {
		v.off = 0
		n := uint64(v.divisor.Load())
		if v.captured++; (v.captured-1)%n != 0 {
			return nil
		}
	} else {
		v.captured = 0
		if v.off++; (v.off-1)%max(v.cam.Format().FPS, 1) != 0 {
			return nil
		}
		src = v.blackFrame()
	}
	for i := range v.layers {
		l := &v.layers[i]
		if !l.enabled.Load() {
			l.skipped = true
			continue
		}
		pic := src
		if l.scaler != nil {
			scaled, err := l.scaler.Scale(src)
			if err != nil {
				return err
			}
			pic = scaled
			src = scaled // smaller layers scale from this one: less to read
		}
		if err := v.encode(l, pic); err != nil {
			return fmt.Errorf("layer %d (%q): %w", i, l.Config().RID, err)
		}
	}
	return nil
}

// encode encodes pic on layer l and writes the sample.
func (v *Video) encode(l *VideoLayer, pic *hal.Frame) error {
	if bps := l.bitrate.Swap(0); bps != 0 {
		if err := l.enc.SetBitrate(int(bps)); err != nil {
			return err
		}
	}
	key := l.keyframe.Swap(false) || l.skipped
	l.skipped = false
	ef, err := l.enc.Encode(pic, key)
	if err != nil || len(ef.Data) == 0 {
		return err
	}
	l.encoded.Add(1)
	d := time.Second / time.Duration(max(v.cam.Format().FPS, 1))
	if !l.last.IsZero() && pic.Captured.After(l.last) {
		d = pic.Captured.Sub(l.last)
	}
	l.last = pic.Captured
	if err := l.cfg.Load().Out.WriteSample(media.Sample{Data: ef.Data, Duration: d}); err != nil {
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
