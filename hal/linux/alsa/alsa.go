// Package alsa is the board's microphone and speaker on Linux: hal.AudioIn and hal.AudioOut
// over ALSA PCMs at 48 kHz, 10 ms periods, delivered to callers as mono signed 16-bit PCM
// whatever the device negotiates (S16 or S32, one or more channels; converted here).
//
// Why alsa-lib through cgo: alsa-lib is the field's library for ALSA. It resolves PCM
// names ("default", "plughw:1,0", "hw:Loopback,0,0"), the system's asound.conf and its
// plugins (dmix, dsnoop, plug's resampling), which a pure-Go ioctl binding would have to
// re-implement and a pure-Go binding of the kernel interface (yobert/alsa) is not on the
// module proxy here. miniaudio (gen2brain/malgo) would also link alsa-lib, behind a
// callback thread of its own: its own buffering between our pull/push API and ALSA adds a
// period of latency and a goroutine-per-callback hop, and it hides xrun and unplug
// events. The binding (pcm_cgo.go) is thin: one C function negotiates hw and sw
// parameters, the rest are direct snd_pcm_* calls.
//
// Blocking and cancellation: PCMs are opened non-blocking. ReadPCM and WritePCM transfer
// what is ready and otherwise wait in snd_pcm_wait for at most one period at a time,
// checking ctx between waits, so a cancelled ctx returns within ~10 ms and no goroutine
// ever stays in C. Close takes effect within the same ~10 ms.
//
// Faults: an xrun (EPIPE) is recovered with snd_pcm_prepare and counted (Xruns); a
// suspend (ESTRPIPE) is resumed, or re-prepared where the driver cannot resume, and
// counted (Suspends); an unplugged device (ENODEV) returns ErrUnplugged from then on.
// ReopeningMic and ReopeningSpeaker close such a device and reopen it with capped backoff.
//
// Builds without cgo (CGO_ENABLED=0, as when cross-compiling without a cross toolchain)
// open nothing: OpenMic, OpenSpeaker and Devices return ErrNoALSA.
package alsa

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"roombox/hal"
)

// The format callers get: 48 kHz mono, 10 ms periods.
const (
	SampleRate   = 48000
	PeriodFrames = SampleRate / 100
)

var audioFormat = hal.AudioFormat{SampleRate: SampleRate, Channels: 1, FrameSamples: PeriodFrames}

// Default device buffers, in periods. Capture latency is one period whatever the buffer
// (a period is read as soon as it is complete), so capture gets room to ride out a late
// reader; playback latency is the buffer, so playback keeps two periods: <= 20 ms.
const (
	DefaultCapturePeriods  = 4
	DefaultPlaybackPeriods = 2
)

var (
	// ErrUnplugged is returned once a device has gone away (ENODEV: a USB device
	// unplugged, a driver unbound). The device stays unusable; close it and open it again
	// when it is back, as ReopeningMic and ReopeningSpeaker do.
	ErrUnplugged = errors.New("alsa: device unplugged")
	// ErrNoALSA is returned by every open in a build without cgo.
	ErrNoALSA = errors.New("alsa: built without ALSA (cgo)")
)

// Internal results of a pcm call, mapped from alsa-lib's negative errnos by the binding.
var (
	errAgain     = errors.New("alsa: not ready")   // EAGAIN: nothing to transfer yet
	errXrun      = errors.New("alsa: xrun")        // EPIPE: overrun or underrun
	errSuspended = errors.New("alsa: suspended")   // ESTRPIPE: system suspend
	errStopped   = errors.New("alsa: not running") // EBADFD: setup or open state
)

// Config selects and sizes a device.
type Config struct {
	// Device is an ALSA PCM name: "default", "plughw:1,0", "hw:Loopback,0,0", or one of
	// Devices. Empty means "default".
	Device string
	// Periods is the device buffer in 10 ms periods; 0 means DefaultCapturePeriods or
	// DefaultPlaybackPeriods. The driver may round period and buffer sizes.
	Periods int
	// Clock paces the retries while a suspended device resumes and the reopening
	// wrappers' backoff; nil is the wall clock.
	Clock hal.Clock
}

func (c Config) withDefaults(capture bool) Config {
	if c.Device == "" {
		c.Device = "default"
	}
	if c.Periods <= 0 {
		c.Periods = DefaultPlaybackPeriods
		if capture {
			c.Periods = DefaultCapturePeriods
		}
	}
	c.Clock = c.clock()
	return c
}

func (c Config) clock() hal.Clock {
	if c.Clock == nil {
		return hal.WallClock{}
	}
	return c.Clock
}

// SampleFormat is a device's sample encoding; both are native-endian (little on every
// target).
type SampleFormat uint8

// Sample formats the binding negotiates, S16 first.
const (
	S16 SampleFormat = 1
	S32 SampleFormat = 2 // I2S microphones often deliver only 32-bit samples
)

func (f SampleFormat) bytes() int {
	if f == S32 {
		return 4
	}
	return 2
}

func (f SampleFormat) String() string {
	switch f {
	case S16:
		return "S16_LE"
	case S32:
		return "S32_LE"
	}
	return fmt.Sprintf("SampleFormat(%d)", uint8(f))
}

// Params is what a device negotiated.
type Params struct {
	Format       SampleFormat
	Channels     int
	Rate         int
	PeriodFrames int // the device's period, which may differ from the 480 frames callers get
	BufferFrames int
}

func (p Params) frameBytes() int { return p.Format.bytes() * p.Channels }

// Latency is the time the device buffer holds.
func (p Params) Latency() time.Duration {
	return time.Duration(p.BufferFrames) * time.Second / time.Duration(p.Rate)
}

func (p Params) String() string {
	return fmt.Sprintf("%s %d ch %d Hz, period %d, buffer %d frames", p.Format, p.Channels, p.Rate, p.PeriodFrames, p.BufferFrames)
}

// pcm is one open ALSA PCM in non-blocking mode, the seam between the stream logic and
// alsa-lib (like periph's sysfs fileIOOpen): tests replace openPCM with a fake that models
// the clock, xruns, suspends and unplugs that alsa-lib's null plugin cannot.
type pcm interface {
	// transfer reads (capture) or writes (playback) up to len(b)/frame-size frames without
	// blocking and returns how many moved; nothing ready is errAgain. Errors are errXrun,
	// errSuspended, errStopped, ErrUnplugged or others.
	transfer(b []byte) (int, error)
	// wait blocks until a period can be transferred or d passes; a timeout is not an error.
	wait(d time.Duration) error
	// prepare recovers from an xrun; a capture stream is started again.
	prepare() error
	// resume continues a suspended stream: errAgain while the driver is still resuming.
	resume() error
	// delay is snd_pcm_delay: in frames, how long a frame written now waits before it is
	// played (playback), or how long the next frame read has waited since it was
	// captured (capture).
	delay() (int, error)
	close() error
}

// openPCM opens and negotiates a PCM; the binding sets it, tests replace it.
var openPCM func(name string, capture bool, periods int) (pcm, Params, error) = openALSA

// waitSlice bounds each wait in C, and so how late a cancelled ctx or a Close is noticed.
const waitSlice = 10 * time.Millisecond

// resumeRetry is the pause between snd_pcm_resume attempts while a driver wakes up.
const resumeRetry = 10 * time.Millisecond

// stream is what a Mic and a Speaker share: the PCM, its recovery and its counters.
type stream struct {
	name   string // "mic default", for errors
	par    Params
	clock  hal.Clock
	direct bool // the device is mono S16: transfer the caller's samples in place

	mu sync.Mutex // held across every pcm call, so Close never frees the PCM under one
	p  pcm        // nil once closed

	unplugged atomic.Bool
	xruns     atomic.Uint64
	suspends  atomic.Uint64
}

func openStream(kind string, cfg Config, capture bool) (*stream, error) {
	cfg = cfg.withDefaults(capture)
	name := kind + " " + cfg.Device
	p, par, err := openPCM(cfg.Device, capture, cfg.Periods)
	if err != nil {
		return nil, fmt.Errorf("alsa: %s: %w", name, err)
	}
	if par.Rate != SampleRate || par.Channels < 1 || (par.Format != S16 && par.Format != S32) {
		p.close()
		return nil, fmt.Errorf("alsa: %s: negotiated %s; need %d Hz S16 or S32", name, par, SampleRate)
	}
	return &stream{
		name:   name,
		par:    par,
		clock:  cfg.Clock,
		direct: par.Format == S16 && par.Channels == 1,
		p:      p,
	}, nil
}

// io transfers all of b, in the device's format, waiting and recovering as needed.
func (s *stream) io(ctx context.Context, b []byte) error {
	fb := s.par.frameBytes()
	for len(b) > 0 {
		if s.unplugged.Load() {
			return fmt.Errorf("alsa: %s: %w", s.name, ErrUnplugged)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if s.p == nil {
			s.mu.Unlock()
			return hal.ErrClosed
		}
		n, err := s.p.transfer(b)
		if errors.Is(err, errAgain) || err == nil && n == 0 {
			err = s.p.wait(waitSlice)
		}
		s.mu.Unlock()
		b = b[n*fb:]
		if err != nil {
			if err := s.recover(ctx, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// recover handles a failed transfer or wait: it returns nil once the stream can go on.
func (s *stream) recover(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, errXrun), errors.Is(err, errStopped):
		// errStopped: a capture stream that stopped (draining after an xrun) needs the
		// same prepare and start.
		if errors.Is(err, errXrun) {
			s.xruns.Add(1)
		}
		err = s.locked(pcm.prepare)
	case errors.Is(err, errSuspended):
		s.suspends.Add(1)
		err = s.resume(ctx)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnplugged):
		s.unplugged.Store(true)
	case errors.Is(err, hal.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("alsa: %s: %w", s.name, err)
}

// resume waits for a suspended device to resume; a driver that cannot (ENOSYS) or that
// fails is prepared afresh, losing what its buffer held.
func (s *stream) resume(ctx context.Context) error {
	for {
		err := s.locked(pcm.resume)
		if !errors.Is(err, errAgain) {
			if err == nil || errors.Is(err, ErrUnplugged) || errors.Is(err, hal.ErrClosed) {
				return err
			}
			return s.locked(pcm.prepare)
		}
		if err := s.clock.Wait(ctx, s.clock.Now().Add(resumeRetry)); err != nil {
			return err
		}
	}
}

// locked calls f on the PCM under the lock, or returns hal.ErrClosed.
func (s *stream) locked(f func(pcm) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return hal.ErrClosed
	}
	return f(s.p)
}

func (s *stream) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return nil
	}
	err := s.p.close()
	s.p = nil
	if err != nil {
		return fmt.Errorf("alsa: %s: close: %w", s.name, err)
	}
	return nil
}

// Params returns what the device negotiated.
func (s *stream) Params() Params { return s.par }

// Xruns counts the overruns (capture) or underruns (playback) recovered so far.
func (s *stream) Xruns() uint64 { return s.xruns.Load() }

// Delay is snd_pcm_delay as a duration (hal.DelayReporter): for a Speaker how long a sample
// written now waits before it is played, for a Mic how long the next sample read has waited
// since it was captured. 0 while the device cannot tell (closed, or recovering from an
// xrun): the echo canceller then falls back on its own estimate of the delay.
func (s *stream) Delay() time.Duration {
	var frames int
	if err := s.locked(func(p pcm) (err error) { frames, err = p.delay(); return err }); err != nil || frames < 0 {
		return 0
	}
	return time.Duration(frames) * time.Second / SampleRate
}

// Suspends counts the system suspends the device has come back from.
func (s *stream) Suspends() uint64 { return s.suspends.Load() }

// Format is 48 kHz mono, 480-frame periods, whatever the device negotiated.
func (s *stream) Format() hal.AudioFormat { return audioFormat }

// Mic is an ALSA capture device. ReadPCM is for one goroutine; Close, Xruns and
// Suspends may be called from any.
type Mic struct {
	*stream
	raw []byte // one period in the device's format, unless direct
}

// OpenMic opens a capture device and starts it.
func OpenMic(cfg Config) (*Mic, error) {
	s, err := openStream("mic", cfg, true)
	if err != nil {
		return nil, err
	}
	m := &Mic{stream: s}
	if !s.direct {
		m.raw = makeRaw(s.par)
	}
	return m, nil
}

// ReadPCM fills buf[:480] with the next period, mixed to mono.
func (m *Mic) ReadPCM(ctx context.Context, buf []int16) error {
	if len(buf) < PeriodFrames {
		return fmt.Errorf("alsa: %s: buffer of %d samples is shorter than a %d-sample period", m.name, len(buf), PeriodFrames)
	}
	buf = buf[:PeriodFrames]
	if m.direct {
		return m.io(ctx, int16Bytes(buf))
	}
	if err := m.io(ctx, m.raw); err != nil {
		return err
	}
	toMono(buf, m.raw, m.par)
	return nil
}

// Close stops capture and releases the device; a ReadPCM in progress returns
// hal.ErrClosed within a period.
func (m *Mic) Close() error { return m.close() }

// Speaker is an ALSA playback device. WritePCM is for one goroutine; Close, Xruns and
// Suspends may be called from any.
type Speaker struct {
	*stream
	raw []byte // one period in the device's format, unless direct
}

// OpenSpeaker opens a playback device; it starts once its buffer is full.
func OpenSpeaker(cfg Config) (*Speaker, error) {
	s, err := openStream("speaker", cfg, false)
	if err != nil {
		return nil, err
	}
	sp := &Speaker{stream: s}
	if !s.direct {
		sp.raw = makeRaw(s.par)
	}
	return sp, nil
}

// WritePCM queues buf (mono samples, any length) and returns once it is all in the
// device buffer, waiting for room as the device plays.
func (sp *Speaker) WritePCM(ctx context.Context, buf []int16) error {
	if sp.direct {
		return sp.io(ctx, int16Bytes(buf))
	}
	for len(buf) > 0 {
		n := min(len(buf), PeriodFrames)
		fromMono(sp.raw, buf[:n], sp.par)
		if err := sp.io(ctx, sp.raw[:n*sp.par.frameBytes()]); err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

// Close drops what is queued and releases the device; a WritePCM in progress returns
// hal.ErrClosed within a period.
func (sp *Speaker) Close() error { return sp.close() }

// makeRaw allocates one period in the device's format, aligned for its samples.
func makeRaw(par Params) []byte {
	words := make([]int32, (PeriodFrames*par.frameBytes()+3)/4)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), PeriodFrames*par.frameBytes())
}

func int16Bytes(s []int16) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 2*len(s))
}

// toMono averages each frame of raw's channels into out. S32 keeps its top 16 bits.
func toMono(out []int16, raw []byte, par Params) {
	ch := par.Channels
	if par.Format == S32 {
		in := unsafe.Slice((*int32)(unsafe.Pointer(&raw[0])), len(out)*ch)
		for i := range out {
			var sum int64
			for _, v := range in[i*ch : i*ch+ch] {
				sum += int64(v)
			}
			out[i] = int16((sum / int64(ch)) >> 16)
		}
		return
	}
	in := unsafe.Slice((*int16)(unsafe.Pointer(&raw[0])), len(out)*ch)
	for i := range out {
		var sum int32
		for _, v := range in[i*ch : i*ch+ch] {
			sum += int32(v)
		}
		out[i] = int16(sum / int32(ch))
	}
}

// fromMono copies each sample of in to every channel of a frame in raw.
func fromMono(raw []byte, in []int16, par Params) {
	ch := par.Channels
	if par.Format == S32 {
		out := unsafe.Slice((*int32)(unsafe.Pointer(&raw[0])), len(in)*ch)
		for i, v := range in {
			for c := range ch {
				out[i*ch+c] = int32(v) << 16
			}
		}
		return
	}
	out := unsafe.Slice((*int16)(unsafe.Pointer(&raw[0])), len(in)*ch)
	for i, v := range in {
		for c := range ch {
			out[i*ch+c] = v
		}
	}
}

// Device is an ALSA PCM the system's configuration lists (snd_device_name_hint).
type Device struct {
	Name   string // to use as Config.Device: "hw:CARD=Loopback,DEV=0", "default"
	Desc   string // the human description, lines joined with " - "
	Input  bool   // usable for capture
	Output bool   // usable for playback
}
