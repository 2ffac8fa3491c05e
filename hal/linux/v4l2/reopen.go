package v4l2

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"roombox/hal"
	"roombox/internal/backoff"
)

// EventKind says what happened to a camera behind a Reopener.
type EventKind uint8

// Kinds of Reopener events.
const (
	Lost       EventKind = 1 // the camera failed (unplugged or stalled) and was closed
	OpenFailed EventKind = 2 // a reopen attempt failed; another follows after Backoff
	Reopened   EventKind = 3 // a reopen attempt succeeded; frames flow again
)

func (k EventKind) String() string {
	switch k {
	case Lost:
		return "lost"
	case OpenFailed:
		return "open-failed"
	case Reopened:
		return "reopened"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one step of losing and regaining a camera.
type Event struct {
	Kind    EventKind
	Time    time.Time
	Attempt int           // reopen attempts since the camera was lost; 0 for Lost
	Backoff time.Duration // the wait before the next attempt, for OpenFailed
	Err     error         // why, for Lost and OpenFailed
}

// Opener opens a camera at the mode nearest to want; Reopener calls it again after an
// unplug, and on SetFormat.
type Opener func(ctx context.Context, want hal.VideoFormat) (hal.Camera, error)

// ReopenConfig tunes a Reopener; zero fields take the defaults.
type ReopenConfig struct {
	Clock      hal.Clock     // default the wall clock
	MinBackoff time.Duration // first wait between attempts; default 250 ms
	MaxBackoff time.Duration // cap of the doubling waits; default 5 s
	// OnEvent, if set, is called from the reading goroutine with each event, so the
	// device can log it and show it on its page.
	OnEvent func(Event)
}

// Reopener is a hal.Camera that outlives its device: when a read fails with ErrUnplugged or
// ErrStalled it closes the camera, reports Lost and keeps reopening with a capped doubling
// backoff (no jitter: the device is local, nothing else retries against it) inside the same
// ReadFrame, which returns the first frame of the reopened camera. So a capture loop just
// waits across an unplug. Seq keeps counting across reopens. ReadFrame is for one goroutine;
// Close may be called from any and ends a ReadFrame that is waiting to reopen.
type Reopener struct {
	open Opener
	cfg  ReopenConfig

	closing context.Context // cancelled by Close
	stop    context.CancelFunc

	mu     sync.Mutex // guards cam, format and modes; never held while reading or opening
	cam    hal.Camera
	format hal.VideoFormat
	modes  []hal.VideoFormat

	// Touched only by the reading goroutine:
	seq  uint64
	want hal.VideoFormat // what reopening asks for: the first camera's format, or SetFormat's
}

// NewReopener wraps cam, already open, and reopens it with open when it is lost.
func NewReopener(cam hal.Camera, open Opener, cfg ReopenConfig) *Reopener {
	if cfg.Clock == nil {
		cfg.Clock = hal.WallClock{}
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	closing, stop := context.WithCancel(context.Background())
	r := &Reopener{open: open, cfg: cfg, closing: closing, stop: stop, want: cam.Format()}
	r.install(cam)
	return r
}

// SetFormat reopens the camera at the mode nearest to want (hal.FormatSetter); from the
// reading goroutine, between reads. A device streams at one format at a time, so the
// camera is closed first; if the new mode does not open, the old one is reopened and the
// error returned (and if that fails too, ReadFrame keeps reopening it, as after an unplug).
func (r *Reopener) SetFormat(ctx context.Context, want hal.VideoFormat) (hal.VideoFormat, error) {
	r.mu.Lock()
	cam, old := r.cam, r.format
	r.cam = nil
	r.mu.Unlock()
	if r.closing.Err() != nil {
		return old, hal.ErrClosed
	}
	if cam != nil {
		cam.Close()
	}
	next, err := r.open(ctx, want)
	if err != nil {
		if back, berr := r.open(ctx, r.want); berr == nil {
			r.install(back)
		}
		return old, fmt.Errorf("v4l2: camera mode %dx%d@%d: %w", want.Width, want.Height, want.FPS, err)
	}
	r.want = want
	if !r.install(next) {
		return old, hal.ErrClosed
	}
	return next.Format(), nil
}

// install makes cam the current camera, unless Close came first (then cam is closed).
func (r *Reopener) install(cam hal.Camera) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing.Err() != nil {
		cam.Close()
		return false
	}
	r.cam, r.format = cam, cam.Format()
	if l, ok := cam.(hal.ModeLister); ok {
		r.modes = l.Modes()
	}
	return true
}

// Format returns the format of the current camera (of the last one while it is being reopened).
func (r *Reopener) Format() hal.VideoFormat {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.format
}

// Modes lists the modes of the current camera, or of the last one while it is being
// reopened (hal.ModeLister); nil for a camera that does not list them.
func (r *Reopener) Modes() []hal.VideoFormat {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.modes)
}

// Current is the open camera, nil while it is being reopened.
func (r *Reopener) Current() hal.Camera {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cam
}

// ReadFrame reads the next frame, reopening the camera as often as needed until ctx ends
// or Close is called.
func (r *Reopener) ReadFrame(ctx context.Context, f *hal.Frame) error {
	for {
		r.mu.Lock()
		cam := r.cam
		r.mu.Unlock()
		if r.closing.Err() != nil {
			return hal.ErrClosed
		}
		if cam == nil {
			var err error
			if cam, err = r.reopen(ctx); err != nil {
				return err
			}
		}
		err := cam.ReadFrame(ctx, f)
		if err == nil {
			f.Seq = r.seq
			r.seq++
			return nil
		}
		if r.closing.Err() != nil {
			return hal.ErrClosed
		}
		if !errors.Is(err, ErrUnplugged) && !errors.Is(err, ErrStalled) {
			return err
		}
		r.mu.Lock()
		if r.cam == cam {
			r.cam = nil
		}
		r.mu.Unlock()
		cam.Close()
		r.emit(Event{Kind: Lost, Time: r.cfg.Clock.Now(), Err: err})
	}
}

// reopen opens a camera, waiting between failed attempts, until one opens, ctx ends or
// Close is called.
func (r *Reopener) reopen(ctx context.Context) (hal.Camera, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.closing, cancel)()
	curve := backoff.Policy{Base: r.cfg.MinBackoff, Max: r.cfg.MaxBackoff}
	for attempt := 1; ; attempt++ {
		cam, err := r.open(ctx, r.want)
		if err == nil {
			if !r.install(cam) {
				return nil, hal.ErrClosed
			}
			r.emit(Event{Kind: Reopened, Time: r.cfg.Clock.Now(), Attempt: attempt})
			return cam, nil
		}
		if r.closing.Err() != nil {
			return nil, hal.ErrClosed
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("v4l2: reopening camera: %w", ctx.Err())
		}
		now, wait := r.cfg.Clock.Now(), curve.Delay(attempt)
		r.emit(Event{Kind: OpenFailed, Time: now, Attempt: attempt, Backoff: wait, Err: err})
		if err := r.cfg.Clock.Wait(ctx, now.Add(wait)); err != nil {
			if r.closing.Err() != nil {
				return nil, hal.ErrClosed
			}
			return nil, fmt.Errorf("v4l2: reopening camera: %w", err)
		}
	}
}

func (r *Reopener) emit(e Event) {
	if r.cfg.OnEvent != nil {
		r.cfg.OnEvent(e)
	}
}

// Close closes the current camera and ends any reopening; reads then return hal.ErrClosed.
func (r *Reopener) Close() error {
	r.stop()
	r.mu.Lock()
	cam := r.cam
	r.cam = nil
	r.mu.Unlock()
	if cam == nil {
		return nil
	}
	return cam.Close()
}
