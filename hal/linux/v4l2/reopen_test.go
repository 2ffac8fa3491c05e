package v4l2

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"roombox/hal"
	"roombox/hal/sim"
)

// fakeCam returns its results in order, then blocks until ctx ends or it is closed.
type fakeCam struct {
	format  hal.VideoFormat
	results []error
	closeMu sync.Mutex
	closed  chan struct{}
}

func newFakeCam(w int, results ...error) *fakeCam {
	return &fakeCam{format: hal.VideoFormat{Width: w, Height: 2, FPS: 30}, results: results, closed: make(chan struct{})}
}

func (c *fakeCam) Format() hal.VideoFormat { return c.format }

func (c *fakeCam) ReadFrame(ctx context.Context, f *hal.Frame) error {
	if len(c.results) == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.closed:
			return hal.ErrClosed
		}
	}
	err := c.results[0]
	c.results = c.results[1:]
	f.Ensure(c.format.Width, c.format.Height)
	f.Seq = 1000 // the wrapped camera's own count, which Reopener replaces
	return err
}

func (c *fakeCam) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
	return nil
}

func (c *fakeCam) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// scriptedOpener fails with ErrNoDevice fails times, then returns cam; it records what
// each call asked for.
type scriptedOpener struct {
	mu    sync.Mutex
	fails int
	cam   hal.Camera
	calls int
	asked []hal.VideoFormat
}

func (o *scriptedOpener) open(ctx context.Context, want hal.VideoFormat) (hal.Camera, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	o.asked = append(o.asked, want)
	if o.calls <= o.fails {
		return nil, fmt.Errorf("attempt %d: %w", o.calls, ErrNoDevice)
	}
	return o.cam, nil
}

type eventLog struct {
	mu sync.Mutex
	ev []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
}

func (l *eventLog) summary() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []string
	for _, e := range l.ev {
		s = append(s, fmt.Sprintf("%v#%d/%v", e.Kind, e.Attempt, e.Backoff))
	}
	return s
}

// readAsync runs one ReadFrame in a goroutine the test waits for.
func readAsync(ctx context.Context, r *Reopener, f *hal.Frame) chan error {
	done := make(chan error, 1)
	go func() { done <- r.ReadFrame(ctx, f) }()
	return done
}

func TestReopenerRecoversAfterUnplug(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	clock := sim.NewFakeClock(epoch)
	unplug := fmt.Errorf("v4l2: /dev/video0: dequeue: %w", ErrUnplugged)
	first := newFakeCam(4, nil, nil, unplug)
	second := newFakeCam(8, nil, nil)
	op := &scriptedOpener{fails: 2, cam: second}
	var log eventLog
	r := NewReopener(first, op.open, ReopenConfig{Clock: clock, OnEvent: log.add})
	defer r.Close()

	var f hal.Frame
	for i := range 2 {
		if err := r.ReadFrame(ctx, &f); err != nil || f.Seq != uint64(i) {
			t.Fatalf("frame %d: %v, Seq %d", i, err, f.Seq)
		}
	}
	// The third read meets the unplug, and waits across two failed reopens.
	done := readAsync(ctx, r, &f)
	for _, d := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond} {
		if err := clock.BlockUntilWaiters(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(d)
	}
	if err := <-done; err != nil || f.Seq != 2 || f.Width != 8 {
		t.Fatalf("first frame after the replug: %v, Seq %d, width %d", err, f.Seq, f.Width)
	}
	if !first.isClosed() {
		t.Error("the unplugged camera was not closed")
	}
	if got := r.Format().Width; got != 8 {
		t.Errorf("Format().Width = %d, want the new camera's 8", got)
	}
	want := []string{"lost#0/0s", "open-failed#1/250ms", "open-failed#2/500ms", "reopened#3/0s"}
	if got := log.summary(); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if !errors.Is(log.ev[0].Err, ErrUnplugged) || !errors.Is(log.ev[1].Err, ErrNoDevice) {
		t.Errorf("event errors = %v, %v", log.ev[0].Err, log.ev[1].Err)
	}
	if err := r.ReadFrame(ctx, &f); err != nil || f.Seq != 3 {
		t.Errorf("next frame: %v, Seq %d", err, f.Seq)
	}
}

func TestReopenerBackoffIsCapped(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	clock := sim.NewFakeClock(epoch)
	op := &scriptedOpener{fails: 5, cam: newFakeCam(4, nil)}
	var log eventLog
	r := NewReopener(newFakeCam(4, fmt.Errorf("x: %w", ErrStalled)), op.open,
		ReopenConfig{Clock: clock, MinBackoff: time.Second, MaxBackoff: 3 * time.Second, OnEvent: log.add})
	defer r.Close()
	done := readAsync(ctx, r, &hal.Frame{})
	for range 5 {
		if err := clock.BlockUntilWaiters(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(3 * time.Second)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"lost#0/0s", "open-failed#1/1s", "open-failed#2/2s", "open-failed#3/3s", "open-failed#4/3s", "open-failed#5/3s", "reopened#6/0s"}
	if got := log.summary(); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestReopenerPassesOtherErrors(t *testing.T) {
	boom := errors.New("boom")
	op := &scriptedOpener{cam: newFakeCam(4)}
	r := NewReopener(newFakeCam(4, boom), op.open, ReopenConfig{Clock: sim.NewFakeClock(epoch)})
	defer r.Close()
	if err := r.ReadFrame(context.Background(), &hal.Frame{}); !errors.Is(err, boom) || op.calls != 0 {
		t.Errorf("err = %v after %d opens; want boom and no reopen", err, op.calls)
	}
}

func TestReopenerCloseEndsReopening(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	clock := sim.NewFakeClock(epoch)
	op := &scriptedOpener{fails: 1 << 30}
	r := NewReopener(newFakeCam(4, fmt.Errorf("x: %w", ErrUnplugged)), op.open, ReopenConfig{Clock: clock})
	done := readAsync(ctx, r, &hal.Frame{})
	if err := clock.BlockUntilWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("read = %v, want hal.ErrClosed", err)
	}
	if clock.Waiters() != 0 {
		t.Errorf("%d clock waits left behind", clock.Waiters())
	}
}

func TestReopenerContextEndsReopening(t *testing.T) {
	defer goleak.VerifyNone(t)
	clock := sim.NewFakeClock(epoch)
	op := &scriptedOpener{fails: 1 << 30}
	r := NewReopener(newFakeCam(4, fmt.Errorf("x: %w", ErrUnplugged)), op.open, ReopenConfig{Clock: clock})
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := readAsync(ctx, r, &hal.Frame{})
	if err := clock.BlockUntilWaiters(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("read = %v, want context.Canceled", err)
	}
	if op.calls != 1 {
		t.Errorf("%d open attempts, want 1", op.calls)
	}
}

func TestReopenerCloseDuringRead(t *testing.T) {
	defer goleak.VerifyNone(t)
	cam := newFakeCam(4) // blocks until closed
	r := NewReopener(cam, (&scriptedOpener{}).open, ReopenConfig{Clock: sim.NewFakeClock(epoch)})
	done := readAsync(context.Background(), r, &hal.Frame{})
	r.Close()
	if err := <-done; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("read = %v, want hal.ErrClosed", err)
	}
	if !cam.isClosed() {
		t.Error("camera not closed")
	}
}

// SetFormat closes the camera, opens the new mode and reads from it; a mode that does not
// open leaves the old one reopened and the error returned.
func TestReopenerSetFormat(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	first := newFakeCam(4, nil)
	wide := newFakeCam(16, nil)
	again := newFakeCam(16, nil)
	op := &scriptedOpener{cam: wide}
	r := NewReopener(first, op.open, ReopenConfig{Clock: sim.NewFakeClock(epoch)})
	defer r.Close()
	var f hal.Frame
	if err := r.ReadFrame(ctx, &f); err != nil {
		t.Fatal(err)
	}
	want := hal.VideoFormat{Width: 16, Height: 2, FPS: 30}
	got, err := r.SetFormat(ctx, want)
	if err != nil || got != want || r.Format() != want || !first.isClosed() {
		t.Fatalf("SetFormat = %v, %v; Format %v; old camera closed: %v", got, err, r.Format(), first.isClosed())
	}
	if err := r.ReadFrame(ctx, &f); err != nil || f.Width != 16 || f.Seq != 1 {
		t.Fatalf("read after SetFormat: %v, width %d, seq %d", err, f.Width, f.Seq)
	}

	// A mode that does not open: the old one is opened again.
	op.mu.Lock()
	op.fails, op.calls, op.cam = 1, 0, again
	op.mu.Unlock()
	if got, err := r.SetFormat(ctx, hal.VideoFormat{Width: 32, Height: 2, FPS: 30}); !errors.Is(err, ErrNoDevice) || got != want {
		t.Fatalf("SetFormat to a mode that fails = %v, %v", got, err)
	}
	if !wide.isClosed() || r.Current() != again {
		t.Fatal("the old mode was not reopened after the failed SetFormat")
	}
	op.mu.Lock()
	asked := slices.Clone(op.asked)
	op.mu.Unlock()
	if n := len(asked); n < 2 || asked[n-1] != want {
		t.Fatalf("opener asked for %v; want the old mode %v last", asked, want)
	}
}
