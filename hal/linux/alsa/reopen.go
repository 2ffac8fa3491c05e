package alsa

import (
	"context"
	"errors"
	"sync"
	"time"

	"roombox/hal"
	"roombox/internal/backoff"
)

// ReopeningMic is a microphone that survives being unplugged: ReadPCM opens the device
// when it is not open, waiting between failed attempts with capped, jittered backoff on
// Config.Clock, and after ErrUnplugged closes it and tries again. It blocks meanwhile, so
// the room hears nothing rather than an error that would end the audio pipeline; Err tells
// the page why. ReadPCM is for one goroutine; the other methods may be called from any.
type ReopeningMic struct{ r *reopener[*Mic] }

// NewReopeningMic returns a microphone on cfg's device; nothing is opened until ReadPCM.
func NewReopeningMic(cfg Config) *ReopeningMic {
	return &ReopeningMic{newReopener(cfg, OpenMic)}
}

// Format is 48 kHz mono, 480-frame periods, like Mic's.
func (m *ReopeningMic) Format() hal.AudioFormat { return audioFormat }

// ReadPCM reads the next period, opening or reopening the device first if needed.
func (m *ReopeningMic) ReadPCM(ctx context.Context, buf []int16) error {
	for {
		d, err := m.r.get(ctx)
		if err != nil {
			return err
		}
		if err := d.ReadPCM(ctx, buf); !errors.Is(err, ErrUnplugged) {
			return err
		}
		m.r.lost(d, ErrUnplugged)
	}
}

// Err is why the device is not open (the last open error, or ErrUnplugged), or nil.
func (m *ReopeningMic) Err() error { return m.r.Err() }

// Xruns counts the xruns of every device opened so far.
func (m *ReopeningMic) Xruns() uint64 { return m.r.Xruns() }

// Delay is the open device's (Mic.Delay); 0 while none is open.
func (m *ReopeningMic) Delay() time.Duration { return m.r.Delay() }

// Close closes the device and ends a ReadPCM waiting to reopen it with hal.ErrClosed.
func (m *ReopeningMic) Close() error { return m.r.Close() }

// ReopeningSpeaker is a speaker that survives being unplugged, as ReopeningMic is a
// microphone. WritePCM is for one goroutine; the other methods may be called from any.
type ReopeningSpeaker struct{ r *reopener[*Speaker] }

// NewReopeningSpeaker returns a speaker on cfg's device; nothing is opened until WritePCM.
func NewReopeningSpeaker(cfg Config) *ReopeningSpeaker {
	return &ReopeningSpeaker{newReopener(cfg, OpenSpeaker)}
}

// Format is 48 kHz mono, 480-frame periods, like Speaker's.
func (s *ReopeningSpeaker) Format() hal.AudioFormat { return audioFormat }

// WritePCM plays buf, opening or reopening the device first if needed. After an unplug
// the samples not yet queued go to the reopened device.
func (s *ReopeningSpeaker) WritePCM(ctx context.Context, buf []int16) error {
	for {
		d, err := s.r.get(ctx)
		if err != nil {
			return err
		}
		if err := d.WritePCM(ctx, buf); !errors.Is(err, ErrUnplugged) {
			return err
		}
		s.r.lost(d, ErrUnplugged)
	}
}

// Err is why the device is not open (the last open error, or ErrUnplugged), or nil.
func (s *ReopeningSpeaker) Err() error { return s.r.Err() }

// Xruns counts the xruns of every device opened so far.
func (s *ReopeningSpeaker) Xruns() uint64 { return s.r.Xruns() }

// Delay is the open device's (Speaker.Delay); 0 while none is open.
func (s *ReopeningSpeaker) Delay() time.Duration { return s.r.Delay() }

// Close closes the device and ends a WritePCM waiting to reopen it with hal.ErrClosed.
func (s *ReopeningSpeaker) Close() error { return s.r.Close() }

// device is what the reopener needs of a Mic or a Speaker.
type device interface {
	comparable
	Xruns() uint64
	Delay() time.Duration
	Close() error
}

// reopener holds the current device of a Reopening wrapper and opens it with backoff.
type reopener[D device] struct {
	open  func(Config) (D, error)
	cfg   Config
	done  context.Context // ends at Close, cutting a backoff wait short
	close context.CancelFunc

	mu       sync.Mutex
	dev      D
	isOpen   bool
	closed   bool
	failures int    // consecutive failed opens, for the backoff
	err      error  // why the device is not open
	xruns    uint64 // of the devices closed so far
}

func newReopener[D device](cfg Config, open func(Config) (D, error)) *reopener[D] {
	cfg.Clock = cfg.clock()
	done, cancel := context.WithCancel(context.Background())
	return &reopener[D]{open: open, cfg: cfg, done: done, close: cancel}
}

// get returns the open device, opening it first, retrying until it opens, ctx ends or
// the reopener is closed.
func (r *reopener[D]) get(ctx context.Context) (D, error) {
	var zero D
	for {
		r.mu.Lock()
		closed, isOpen, dev := r.closed, r.isOpen, r.dev
		r.mu.Unlock()
		switch {
		case closed:
			return zero, hal.ErrClosed
		case isOpen:
			return dev, nil
		}
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		d, err := r.open(r.cfg)
		r.mu.Lock()
		if err == nil && r.closed {
			r.mu.Unlock()
			d.Close()
			return zero, hal.ErrClosed
		}
		if err == nil {
			r.dev, r.isOpen, r.failures, r.err = d, true, 0, nil
			r.mu.Unlock()
			return d, nil
		}
		r.failures++
		r.err = err
		wait := openBackoff.Delay(r.failures)
		r.mu.Unlock()
		if err := r.sleep(ctx, wait); err != nil {
			return zero, err
		}
	}
}

// sleep waits d on the clock, or until ctx ends (its error) or Close (hal.ErrClosed).
func (r *reopener[D]) sleep(ctx context.Context, d time.Duration) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.done, cancel)()
	err := r.cfg.Clock.Wait(wctx, r.cfg.Clock.Now().Add(d))
	if r.done.Err() != nil {
		return hal.ErrClosed
	}
	return err
}

// lost closes d, which failed with err, so that the next get reopens it.
func (r *reopener[D]) lost(d D, err error) {
	r.mu.Lock()
	if r.isOpen && r.dev == d {
		var zero D
		r.dev, r.isOpen, r.err = zero, false, err
		r.xruns += d.Xruns()
	}
	r.mu.Unlock()
	d.Close() // the device is gone; closing it can only report that again
}

func (r *reopener[D]) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *reopener[D]) Xruns() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isOpen {
		return r.xruns + r.dev.Xruns()
	}
	return r.xruns
}

func (r *reopener[D]) Delay() time.Duration {
	r.mu.Lock()
	dev, isOpen := r.dev, r.isOpen
	r.mu.Unlock()
	if !isOpen {
		return 0
	}
	return dev.Delay() // outside r.mu: it takes the device's lock, which a transfer holds
}

func (r *reopener[D]) Close() error {
	r.close()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if !r.isOpen {
		return nil
	}
	r.isOpen = false
	r.xruns += r.dev.Xruns()
	return r.dev.Close()
}

// openBackoff gives the wait after the nth consecutive failed open: 250 ms doubling to 5 s,
// the upper half jittered so that a mic and a speaker on one USB device do not retry in
// step.
var openBackoff = backoff.Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
