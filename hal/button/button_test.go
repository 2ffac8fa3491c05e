package button_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"roombox/hal"
	"roombox/hal/button"
	"roombox/hal/sim"
)

// Every test stops everything it starts: Run waits for its reader goroutine.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 7, 28, 9, 0, 0, 0, time.UTC)

const ms = time.Millisecond

var names = []string{hal.ButtonMic, hal.ButtonCamera, hal.ButtonVolumeUp}

// source is a raw hal.Buttons driven by the test in lock step with the debouncer's reader.
type source struct {
	edges chan hal.ButtonEvent
	asked chan struct{} // a receive means the reader is in ReadEvent, every edge before handed on
	fail  chan error
}

func (s *source) Names() []string { return names }

func (s *source) ReadEvent(ctx context.Context) (hal.ButtonEvent, error) {
	select {
	case s.asked <- struct{}{}:
	case <-ctx.Done():
		return hal.ButtonEvent{}, ctx.Err()
	}
	select {
	case ev := <-s.edges:
		return ev, nil
	case err := <-s.fail:
		return hal.ButtonEvent{}, err
	case <-ctx.Done():
		return hal.ButtonEvent{}, ctx.Err()
	}
}

type rig struct {
	t      *testing.T
	ctx    context.Context // bounds every blocking step, so a bug fails instead of hanging
	clock  *sim.FakeClock
	src    *source
	b      *button.Buttons
	cancel context.CancelFunc
	runErr chan error
}

func start(t *testing.T, cfg button.Config) *rig {
	t.Helper()
	r := &rig{
		t:      t,
		clock:  sim.NewFakeClock(t0),
		src:    &source{edges: make(chan hal.ButtonEvent), asked: make(chan struct{}), fail: make(chan error)},
		runErr: make(chan error, 1),
	}
	var err error
	if r.b, err = button.New(r.src, r.clock, cfg); err != nil {
		t.Fatal(err)
	}
	var cancel context.CancelFunc
	r.ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	runCtx, stop := context.WithCancel(r.ctx)
	r.cancel = func() { stop(); cancel() }
	go func() { r.runErr <- r.b.Run(runCtx) }()
	t.Cleanup(func() {
		r.cancel()
		<-r.runErr
	})
	r.step(r.src.asked) // the reader is waiting for the first edge
	return r
}

// step waits for a hand-over on ch, failing the test if the rig's context ends first.
func (r *rig) step(ch chan struct{}) {
	r.t.Helper()
	select {
	case <-ch:
	case <-r.ctx.Done():
		r.t.Fatal("the debouncer's reader did not come back for the next edge")
	}
}

// edges reports raw levels of name, alternating from pressed, 'every' apart on the fake
// clock; it returns once the debouncer has taken the last one.
func (r *rig) edges(name string, pressed bool, n int, every time.Duration) {
	r.t.Helper()
	for i := range n {
		if i > 0 {
			r.clock.Advance(every)
		}
		select {
		case r.src.edges <- hal.ButtonEvent{Button: name, Pressed: pressed, Time: r.clock.Now()}:
		case <-r.ctx.Done():
			r.t.Fatal("the debouncer did not take an edge")
		}
		r.step(r.src.asked)
		pressed = !pressed
	}
}

// expect reads events and compares them, as "button kind offset", with want.
func (r *rig) expect(want ...string) {
	r.t.Helper()
	for _, w := range want {
		ev, err := r.b.ReadEvent(r.ctx)
		if err != nil {
			r.t.Fatalf("ReadEvent: %v; want %q", err, w)
		}
		got := fmt.Sprintf("%s %v %v", ev.Button, ev.Kind, ev.Time.Sub(t0))
		if got != w || ev.Pressed != (ev.Kind == hal.Press) {
			r.t.Fatalf("event %q (Pressed %v), want %q", got, ev.Pressed, w)
		}
	}
}

// sentinel presses and releases the camera cleanly and expects exactly that next: no event
// is left over from before.
func (r *rig) sentinel() {
	r.t.Helper()
	at := r.clock.Now().Sub(t0)
	r.edges(hal.ButtonCamera, true, 2, 100*ms)
	r.clock.Advance(time.Second)
	r.expect(fmt.Sprintf("camera press %v", at), fmt.Sprintf("camera release %v", at+100*ms))
}

func TestBouncesGiveOnePressAndOneRelease(t *testing.T) {
	r := start(t, button.Config{})
	r.edges(hal.ButtonMic, true, 11, 500*time.Microsecond) // a press and 5 bounces in 5 ms
	r.clock.Advance(100 * ms)
	r.edges(hal.ButtonMic, false, 11, 500*time.Microsecond) // a release and 5 bounces
	r.clock.Advance(100 * ms)
	r.expect("mic press 5ms", "mic release 110ms")
	r.sentinel()
}

func TestGlitchGivesNothing(t *testing.T) {
	r := start(t, button.Config{})
	r.edges(hal.ButtonMic, true, 2, 19*ms)
	r.clock.Advance(time.Second)
	r.sentinel()
}

func TestLongPressAndRepeat(t *testing.T) {
	r := start(t, button.Config{Repeat: []string{hal.ButtonVolumeUp}})

	// A short press: no long press. The release comes while Run waits for the long press
	// and is reported once stable, with the clock still short of the long press.
	r.edges(hal.ButtonMic, true, 1, 0)
	r.clock.Advance(900 * ms)
	r.expect("mic press 0s")
	if err := r.clock.BlockUntilWaiters(r.ctx, 1); err != nil {
		t.Fatal(err)
	}
	r.edges(hal.ButtonMic, false, 1, 0)
	r.clock.Advance(20 * ms) // t = 0.92 s
	r.expect("mic release 900ms")

	// Held: one long press at the threshold; the mic does not repeat.
	r.edges(hal.ButtonMic, true, 1, 0)
	for range 40 {
		r.clock.Advance(100 * ms) // the clock moves in steps, as a real one would
	}
	r.edges(hal.ButtonMic, false, 1, 0) // t = 4.92 s
	r.clock.Advance(100 * ms)
	r.expect("mic press 920ms", "mic long-press 1.92s", "mic release 4.92s")

	// A repeating button repeats while held and stops at release.
	r.edges(hal.ButtonVolumeUp, true, 2, 1600*ms) // t = 5.02 s .. 6.62 s
	r.clock.Advance(5 * time.Second)
	r.expect("volume-up press 5.02s", "volume-up long-press 6.02s", "volume-up repeat 6.02s", "volume-up repeat 6.27s",
		"volume-up repeat 6.52s", "volume-up release 6.62s")
	r.sentinel()
}

func TestButtonsIndependentAndInOrder(t *testing.T) {
	r := start(t, button.Config{Repeat: []string{hal.ButtonVolumeUp}})
	r.edges(hal.ButtonVolumeUp, true, 1, 0)
	r.clock.Advance(5 * ms)
	r.edges(hal.ButtonMic, true, 3, 2*ms) // bounces, settles pressed at 9 ms
	r.clock.Advance(300 * ms)
	r.edges(hal.ButtonMic, false, 1, 0) // 309 ms
	r.clock.Advance(1000 * ms)
	r.edges(hal.ButtonVolumeUp, false, 1, 0) // 1309 ms
	r.clock.Advance(100 * ms)
	r.expect("volume-up press 0s", "mic press 9ms", "mic release 309ms", "volume-up long-press 1s",
		"volume-up repeat 1s", "volume-up repeat 1.25s", "volume-up release 1.309s")
	r.sentinel()
}

func TestCancelStopsRun(t *testing.T) {
	r := start(t, button.Config{})
	r.edges(hal.ButtonMic, true, 1, 0) // a press pending: Run waits on the clock
	if err := r.clock.BlockUntilWaiters(r.ctx, 1); err != nil {
		t.Fatal(err)
	}
	r.cancel()
	if err := <-r.runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
	r.runErr <- nil // for the cleanup
	if _, err := r.b.ReadEvent(t.Context()); !errors.Is(err, hal.ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadEvent after Run ended: %v", err)
	}
	if n := r.clock.Waiters(); n != 0 {
		t.Errorf("%d clock waits left behind", n)
	}
	if err := r.b.Run(t.Context()); err == nil {
		t.Error("a second Run succeeded")
	}
}

func TestSourceErrorEndsRun(t *testing.T) {
	r := start(t, button.Config{})
	errGone := errors.New("gpio chip removed")
	r.src.fail <- errGone
	err := <-r.runErr
	r.runErr <- nil
	if !errors.Is(err, errGone) || err.Error() != "button: read: gpio chip removed" {
		t.Fatalf("Run = %v, want the source's error, package-prefixed", err)
	}
	if _, err := r.b.ReadEvent(t.Context()); !errors.Is(err, errGone) || !errors.Is(err, hal.ErrClosed) {
		t.Fatalf("ReadEvent after the source failed: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	src := &source{}
	for _, cfg := range []button.Config{
		{Debounce: -ms},
		{Debounce: 50 * ms, LongPress: 50 * ms},
		{Repeat: []string{"power"}},
	} {
		if _, err := button.New(src, hal.WallClock{}, cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
