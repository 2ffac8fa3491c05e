// Package hal defines the board's hardware capabilities as small interfaces and value types.
// It imports only the standard library: media, signaling and device depend on it, never the
// other way round. Optional hardware is a nil interface in Board, not an error.
package hal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrClosed is returned by reads on a closed device.
var ErrClosed = errors.New("hal: device closed")

// VideoFormat is what a camera delivers.
type VideoFormat struct {
	Width, Height int
	FPS           int
}

// Frame is one I420 (YUV 4:2:0 planar) picture. Readers fill a caller-owned Frame so a
// capture loop reuses the same buffers for every frame.
type Frame struct {
	Width, Height int
	Y, U, V       []byte
	StrideY       int // bytes per luma row
	StrideUV      int // bytes per chroma row
	Seq           uint64
	Captured      time.Time
}

// Ensure sizes f's planes for a w x h picture, reallocating only when they are too small.
func (f *Frame) Ensure(w, h int) {
	cw, ch := (w+1)/2, (h+1)/2
	f.Width, f.Height, f.StrideY, f.StrideUV = w, h, w, cw
	f.Y = grow(f.Y, w*h)
	f.U = grow(f.U, cw*ch)
	f.V = grow(f.V, cw*ch)
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// Camera is a pull source of frames.
type Camera interface {
	Format() VideoFormat
	// ReadFrame blocks until the next frame is captured into f or ctx ends.
	ReadFrame(ctx context.Context, f *Frame) error
	Close() error
}

// FormatSetter is a camera whose capture can change while it runs. SetFormat is called from
// the goroutine that reads frames, between reads; the camera takes the mode nearest to want
// that it has and returns the format in force. On an error the camera keeps (or goes back
// to) the format it had.
type FormatSetter interface {
	SetFormat(ctx context.Context, want VideoFormat) (VideoFormat, error)
}

// ModeLister is a camera that tells the modes it has, for a user to pick a capture from:
// each size once, with the fastest rate it has at that size, smallest first.
type ModeLister interface {
	Modes() []VideoFormat
}

// AudioFormat describes interleaved signed 16-bit PCM.
type AudioFormat struct {
	SampleRate   int
	Channels     int
	FrameSamples int // samples per channel in one ReadPCM/WritePCM period
}

// AudioIn is a microphone.
type AudioIn interface {
	Format() AudioFormat
	// ReadPCM blocks until one period (FrameSamples*Channels samples) is in buf.
	ReadPCM(ctx context.Context, buf []int16) error
	Close() error
}

// AudioOut is a speaker.
type AudioOut interface {
	Format() AudioFormat
	WritePCM(ctx context.Context, buf []int16) error
	Close() error
}

// DelayReporter is a speaker that knows how long audio written now waits in its buffers
// before it is played, or a microphone that knows how long the audio it returns next has
// waited since it was captured (ALSA's snd_pcm_delay): what an echo canceller needs to line
// its reference up with the echo.
type DelayReporter interface {
	Delay() time.Duration
}

// XrunCounter is an audio device that counts its overruns (capture) or underruns
// (playback): audio lost between the device and us, shown on the page.
type XrunCounter interface {
	Xruns() uint64
}

// Button names the board's buttons use; hardware maps its keys and pins onto these.
const (
	ButtonMic        = "mic"
	ButtonCamera     = "camera"
	ButtonSpeaker    = "speaker"
	ButtonVolumeUp   = "volume-up"
	ButtonVolumeDown = "volume-down"
)

// ButtonKind says what happened to a button. The zero value is unset: a raw source may
// report only Pressed.
type ButtonKind uint8

// Kinds of button events.
const (
	Press     ButtonKind = 1 // the button went down
	Release   ButtonKind = 2 // the button went up
	LongPress ButtonKind = 3 // the button has been held down for the long-press time; once per press
	Repeat    ButtonKind = 4 // the button is still held; periodic, for buttons that auto-repeat
)

func (k ButtonKind) String() string {
	switch k {
	case Press:
		return "press"
	case Release:
		return "release"
	case LongPress:
		return "long-press"
	case Repeat:
		return "repeat"
	}
	return fmt.Sprintf("ButtonKind(%d)", uint8(k))
}

// ButtonEvent is one event of a button: an edge (Press, Release) or, from a debouncer such
// as hal/button, a LongPress or Repeat while it is held.
type ButtonEvent struct {
	Button string
	Kind   ButtonKind
	// Pressed is true for a Press and false for every other kind, so code that acts on
	// Pressed acts once per press.
	Pressed bool
	Time    time.Time
}

// Buttons delivers events of all the board's buttons.
type Buttons interface {
	// ReadEvent blocks until the next event or ctx ends.
	ReadEvent(ctx context.Context) (ButtonEvent, error)
	Names() []string
}

// Clock is a time source that tests can replace (hal/sim has a real, a fake and an instant
// one). Wait must honour ctx: it returns ctx.Err() as soon as ctx ends, never sleeping past it.
type Clock interface {
	Now() time.Time
	// Wait blocks until the clock reaches t or ctx ends.
	Wait(ctx context.Context, t time.Time) error
}

// WallClock is the real time, the Clock of real hardware and of the simulated board when
// it runs for real. Its Wait reuses pooled timers, so pacing loops allocate nothing.
type WallClock struct{}

var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// Wait blocks until t or until ctx ends.
func (WallClock) Wait(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	tm := timerPool.Get().(*time.Timer)
	tm.Reset(d)
	defer func() {
		tm.Stop() // since Go 1.23 a stopped timer never delivers a stale value after Reset
		timerPool.Put(tm)
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// LED is a single on/off indicator (the mute LED).
type LED interface {
	Set(on bool) error
}

// Thermal is the board's temperature sensor (the SoC's, on a Pi).
type Thermal interface {
	Celsius() (float64, error)
}

// Board is the set of hardware a device has; absent parts are nil.
type Board struct {
	Name    string
	Camera  Camera
	Mic     AudioIn
	Speaker AudioOut
	Buttons Buttons
	LED     LED
	Thermal Thermal
	// Encoder opens the board's hardware H.264 encoder; nil when it has none, and the
	// device encodes in software.
	Encoder func(EncoderConfig) (VideoEncoder, error)
	// EncoderName says which hardware encoder Encoder opens, for the page and the log.
	EncoderName string
	// EncoderBudget is how many pixels a second the hardware encoder encodes at most, over
	// all its instances (bcm2835-codec: about 1080p30); 0 when unbounded or unknown.
	EncoderBudget int
	// Others are what else the board holds (button watchers, GPIO lines), closed first.
	Others []io.Closer
}

// EncoderConfig is what a video encoder is opened with.
type EncoderConfig struct {
	Width, Height int
	FPS           int // default 30
	Bitrate       int // bits per second; default 1 Mbit/s
	KeyInterval   int // frames between IDRs; default 2 s worth
}

// WithDefaults fills c's zero fields with the defaults every encoder uses, so a hardware
// encoder and its software fallback encode alike.
func (c EncoderConfig) WithDefaults() EncoderConfig {
	if c.FPS == 0 {
		c.FPS = 30
	}
	if c.Bitrate == 0 {
		c.Bitrate = 1_000_000
	}
	if c.KeyInterval == 0 {
		c.KeyInterval = 2 * c.FPS
	}
	return c
}

// Close closes every present part and returns their errors joined.
func (b *Board) Close() error {
	var errs []error
	for i := len(b.Others) - 1; i >= 0; i-- {
		errs = append(errs, b.Others[i].Close())
	}
	if b.Camera != nil {
		errs = append(errs, b.Camera.Close())
	}
	if b.Mic != nil {
		errs = append(errs, b.Mic.Close())
	}
	if b.Speaker != nil {
		errs = append(errs, b.Speaker.Close())
	}
	return errors.Join(errs...)
}

// EncodedFrame is one H.264 access unit in Annex-B form. Data is owned by the encoder and
// valid until its next Encode call.
type EncodedFrame struct {
	Data     []byte
	Keyframe bool
}

// VideoEncoder turns I420 frames into H.264 (software, or hardware such as V4L2 M2M).
type VideoEncoder interface {
	// Encode compresses f; forceKey asks for an IDR (with SPS/PPS) for this frame.
	Encode(f *Frame, forceKey bool) (EncodedFrame, error)
	// SetBitrate changes the target bitrate in bits per second while encoding.
	SetBitrate(bps int) error
	Close() error
}
