// Package apm is the audio processing between the microphone and the Opus encoder: echo
// cancellation, noise suppression, automatic gain, a high-pass filter and voice activity,
// by WebRTC's AudioProcessing 0.3 (Debian's libwebrtc-audio-processing) through a small C++
// shim (shim.cc). A Processor is both the capture pipeline's media.AudioStage and the
// playback's media.FarEnd.
package apm

/*
#cgo pkg-config: webrtc-audio-processing
#cgo CXXFLAGS: -std=c++11
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"roombox/hal"
	"roombox/media"
)

// Frame is the frame the processor works in: 10 ms of 48 kHz mono.
const Frame = C.RB_APM_FRAME

// The shim's frame is the pipeline's stage frame.
var _ [Frame - media.StageSamples]struct{}
var _ [media.StageSamples - Frame]struct{}

var (
	_ media.AudioStage = (*Processor)(nil)
	_ media.FarEnd     = (*Processor)(nil)
)

// NoiseSuppression is how hard stationary noise is suppressed: WebRTC's four levels, which
// lower white noise by about 6, 12, 18 and 20 dB (TestNoiseSuppression, BENCHMARKS.md).
type NoiseSuppression int

const (
	NoiseOff NoiseSuppression = iota
	NoiseLow
	NoiseModerate
	NoiseHigh
	NoiseVeryHigh
)

// Input gain bounds, dB.
const (
	MinInputGainDB = -20
	MaxInputGainDB = 30
)

// frameDuration is how long a Frame lasts.
const frameDuration = Frame * time.Second / media.OpusSampleRate

// MaxStreamDelay is the longest echo delay WebRTC takes; longer delays are clamped.
const MaxStreamDelay = 500 * time.Millisecond

// Config is the processing. The zero Config processes nothing (and Last reports
// (Silence, false)); DefaultConfig is what a room box wants.
type Config struct {
	// EchoCancellation removes what the speaker plays from what the microphone hears. Off
	// for a microphone that cancels echo itself (a USB speakerphone's DSP).
	EchoCancellation bool
	NoiseSuppression NoiseSuppression
	// GainControl levels the talker: adaptive digital gain towards -3 dBFS peaks, up to
	// +9 dB, with a limiter.
	GainControl bool
	// InputGainDB is applied to the microphone's samples before anything else (saturating):
	// for a microphone that is too quiet or too hot. MinInputGainDB..MaxInputGainDB.
	InputGainDB float64
	// HighPassFilter removes DC and low-frequency rumble (handling noise, air conditioning).
	HighPassFilter bool
	// VoiceDetection makes Last report each frame's speech flag and level.
	VoiceDetection bool
	// CaptureDelay is how long the microphone and the pipeline hold audio before the
	// processor gets a frame, beyond the frame's own 10 ms (its buffer; the capture
	// pipeline's grouping into 20 ms adds 10 ms for every other frame), added to the
	// speaker's reported delay to tell the canceller how late the echo arrives. A rough
	// value is fine: the canceller also estimates the delay from the signals.
	CaptureDelay time.Duration
}

// DefaultConfig is everything on, noise suppression high.
func DefaultConfig() Config {
	return Config{
		EchoCancellation: true,
		NoiseSuppression: NoiseHigh,
		GainControl:      true,
		HighPassFilter:   true,
		VoiceDetection:   true,
	}
}

func (c Config) check() error {
	switch {
	case c.NoiseSuppression < NoiseOff || c.NoiseSuppression > NoiseVeryHigh:
		return fmt.Errorf("apm: noise suppression level %d out of range", c.NoiseSuppression)
	case !(c.InputGainDB >= MinInputGainDB && c.InputGainDB <= MaxInputGainDB): // also NaN
		return fmt.Errorf("apm: input gain %g dB out of range %d..%d", c.InputGainDB, MinInputGainDB, MaxInputGainDB)
	case c.CaptureDelay < 0:
		return fmt.Errorf("apm: negative capture delay %v", c.CaptureDelay)
	}
	return nil
}

func (c Config) shim() C.rb_apm_config {
	return C.rb_apm_config{
		echo_cancellation: cbool(c.EchoCancellation),
		noise_suppression: C.int(c.NoiseSuppression) - 1, // off is -1, low is the library's 0
		gain_control:      cbool(c.GainControl),
		high_pass_filter:  cbool(c.HighPassFilter),
		voice_detection:   cbool(c.VoiceDetection),
	}
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// ErrClosed is processing after Close.
var ErrClosed = errors.New("apm: processor closed")

// Silence is the level Last reports for digital silence, or with voice detection off
// (RFC 6464: 127 is -127 dBov).
const Silence = 127

// Processor runs the processing. ProcessCapture (the capture goroutine) and Played (the
// playback goroutine) may run at the same time; the other methods are safe from any
// goroutine.
//
// Every call into the library is made under mu, from the capture side (ProcessCapture
// analyses the far end Played queued) or by SetConfig and Close. 0.3 serializes its stream
// calls under one lock of its own, but not everything: set_stream_delay_ms and the reads
// after ProcessStream are plain fields, a component switched by SetConfig mid-frame would
// change what those reads mean, and Close must not free the library's object under a
// running call. Played never waits for the library: it only queues (farQueue).
type Processor struct {
	mu           sync.Mutex
	c            *C.rb_apm // nil once closed
	gain         float64   // linear input gain; 1 is none
	captureDelay time.Duration
	rev          []int16       // one far-end frame, taken from far
	renderDelay  time.Duration // from analysing the last far-end frame to hearing it

	mic  hal.DelayReporter // nil: frames are read as they are captured
	far  farQueue
	last atomic.Uint32 // level | speech<<8 of the last frame
}

// New returns a processor configured by cfg. Close frees it.
func New(cfg Config) (*Processor, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	var code C.int
	c := C.rb_apm_new(&code)
	if c == nil {
		return nil, fmt.Errorf("apm: create: %w", libError(code))
	}
	p := &Processor{c: c, rev: make([]int16, Frame)}
	p.last.Store(Silence)
	if err := p.SetConfig(cfg); err != nil {
		C.rb_apm_free(c)
		return nil, err
	}
	return p, nil
}

// SetConfig changes the processing from the next frame on; the canceller keeps what it has
// learned of the room.
func (p *Processor) SetConfig(cfg Config) error {
	if err := cfg.check(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c == nil {
		return ErrClosed
	}
	if code := C.rb_apm_configure(p.c, cfg.shim()); code != 0 {
		return fmt.Errorf("apm: configure: %w", libError(code))
	}
	p.gain = math.Pow(10, cfg.InputGainDB/20)
	p.captureDelay = cfg.CaptureDelay
	return nil
}

// ProcessCapture processes one Frame of the microphone in place (media.AudioStage).
func (p *Processor) ProcessCapture(frame []int16) error {
	if len(frame) != Frame {
		return fmt.Errorf("apm: capture frame of %d samples, want %d", len(frame), Frame)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c == nil {
		return ErrClosed
	}
	var readAt time.Time
	var backlog time.Duration
	if p.mic != nil {
		readAt, backlog = time.Now(), p.mic.Delay()
	}
	defer p.far.captured(readAt, backlog)
	// The far end played since the last frame first, a frame at a time: the canceller
	// sees the two streams evenly interleaved whatever the speaker's period.
	for first := true; ; first = false {
		heard, ok := p.far.take(p.rev, first)
		if !ok {
			break
		}
		if code := C.rb_apm_reverse(p.c, (*C.int16_t)(unsafe.Pointer(&p.rev[0]))); code != 0 {
			return fmt.Errorf("apm: far end: %w", libError(code))
		}
		p.renderDelay = heard
	}
	if p.gain != 1 {
		for i, v := range frame {
			frame[i] = int16(max(min(math.Round(float64(v)*p.gain), math.MaxInt16), math.MinInt16))
		}
	}
	// The frame's first sample was recorded a frame's length before the frame was complete
	// (frameDuration); CaptureDelay is what the microphone and pipeline add to that.
	delay := p.renderDelay + frameDuration + p.captureDelay
	ms := min(max(delay, 0), MaxStreamDelay) / time.Millisecond
	r := C.rb_apm_capture(p.c, (*C.int16_t)(unsafe.Pointer(&frame[0])), C.int(ms))
	if r < 0 {
		return fmt.Errorf("apm: process capture: %w", libError(r))
	}
	p.last.Store(uint32(r))
	return nil
}

// Played takes what the speaker plays (media.FarEnd): any number of samples, delay before
// the first is heard. It queues them for the capture side and never waits for the library.
func (p *Processor) Played(pcm []int16, delay time.Duration) { p.far.put(pcm, delay, time.Now()) }

// CaptureFrom makes the processor ask mic, after each frame is read, how much audio it
// still holds unread (an ALSA microphone's snd_pcm_delay): the far end is then placed on
// the microphone's clock, however late the frames are read. Without it the processor
// assumes each frame is read as soon as it is captured.
func (p *Processor) CaptureFrom(mic hal.DelayReporter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mic = mic
}

// Last reports the last processed frame: its level in -dBov, 0 (full scale) to Silence, as
// RFC 6464's audio level header carries it, and whether it holds speech. With voice
// detection off it is (Silence, false). For a 20 ms packet, the louder of its two frames
// (the lower level) is a fair summary.
func (p *Processor) Last() (level uint8, voice bool) {
	v := p.last.Load()
	return uint8(v & 0xff), v&0x100 != 0
}

// Close frees the processor; processing afterwards fails with ErrClosed (what is Played
// afterwards goes nowhere).
func (p *Processor) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c != nil {
		C.rb_apm_free(p.c)
		p.c = nil
	}
	return nil
}

// libError is an AudioProcessing::Error code.
type libError C.int

func (e libError) Error() string {
	names := map[libError]string{
		-1: "unspecified", -2: "creation failed", -3: "unsupported component",
		-4: "unsupported function", -5: "null pointer", -6: "bad parameter",
		-7: "bad sample rate", -8: "bad data length", -9: "bad number of channels",
		-10: "file", -11: "stream parameter not set", -12: "not enabled",
	}
	if n, ok := names[e]; ok {
		return fmt.Sprintf("webrtc audio processing error %d (%s)", int(e), n)
	}
	return fmt.Sprintf("webrtc audio processing error %d", int(e))
}
