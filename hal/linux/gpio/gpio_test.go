package gpio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"roombox/hal"
	"roombox/hal/sim"
)

// Watchers and the debouncer stop on Close: nothing may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 7, 28, 9, 0, 0, 0, time.UTC)

// piChip is a Raspberry Pi 4's header chip made of gpiotest pins. Their edge channels are
// unbuffered, so a send returns only once a watcher took the edge, and the next send only
// once the watcher stamped and handed on the previous one.
func piChip() (Chip, []*gpiotest.Pin) {
	c := Chip{Name: "gpiochip0", Label: "pinctrl-bcm2711"}
	var pins []*gpiotest.Pin
	for i := range 28 {
		p := &gpiotest.Pin{N: fmt.Sprintf("GPIO%d", i), Num: i, EdgesChan: make(chan gpio.Level)}
		pins = append(pins, p)
		c.Lines = append(c.Lines, p)
	}
	return c, pins
}

type rig struct {
	t     *testing.T
	ctx   context.Context
	clock *sim.FakeClock
	pins  []*gpiotest.Pin
	b     *Board
}

func start(t *testing.T, m PinMap) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	chip, pins := piChip()
	r := &rig{t: t, ctx: ctx, clock: sim.NewFakeClock(t0), pins: pins}
	var err error
	if r.b, err = open(ctx, m, r.clock, []Chip{chip}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.b.Close() })
	return r
}

// edges puts levels on a line; the last is sent three times (a repeated level is no edge
// to the debouncer). The hand-offs are unbuffered: the line's watcher takes a level only
// after handing on the one before, and the debouncer's reader takes that only after
// queueing the one before it. So when the third copy is taken, every real edge is queued
// for the debouncer, which drains its queue before it advances to the clock's time; an edge
// still on its way when the fake clock jumps would count from the jump instead.
func (r *rig) edges(bcm int, levels ...gpio.Level) {
	r.t.Helper()
	last := levels[len(levels)-1]
	levels = append(levels, last, last)
	for _, l := range levels {
		select {
		case r.pins[bcm].EdgesChan <- l:
		case <-r.ctx.Done():
			r.t.Fatalf("GPIO%d: no watcher took the edge", bcm)
		}
	}
}

func (r *rig) expect(button string, kind hal.ButtonKind) {
	r.t.Helper()
	ev, err := r.b.Buttons.ReadEvent(r.ctx)
	if err != nil {
		r.t.Fatalf("want %s %s: %v", button, kind, err)
	}
	if ev.Button != button || ev.Kind != kind {
		r.t.Fatalf("got %s %s, want %s %s", ev.Button, ev.Kind, button, kind)
	}
}

const (
	bcmMic    = 17
	bcmCamera = 27
	bcmLED    = 25
)

func TestBouncingPressIsOnePressAndOneRelease(t *testing.T) {
	r := start(t, DefaultPinMap())
	r.edges(bcmMic, gpio.Low, gpio.High, gpio.Low, gpio.High, gpio.Low) // contacts bounce, then close
	r.clock.Advance(20 * time.Millisecond)
	r.expect(hal.ButtonMic, hal.Press)
	r.edges(bcmMic, gpio.High, gpio.Low, gpio.High)
	r.clock.Advance(20 * time.Millisecond)
	r.expect(hal.ButtonMic, hal.Release)
	// Had the bounce leaked through, more mic events would come before the camera's.
	r.edges(bcmCamera, gpio.Low)
	r.clock.Advance(20 * time.Millisecond)
	r.expect(hal.ButtonCamera, hal.Press)
}

func TestActiveLowAndPull(t *testing.T) {
	m := PinMap{Buttons: map[string]Pin{
		hal.ButtonMic:    {Line: "GPIO17", ActiveLow: true, Pull: "up"},
		hal.ButtonCamera: {Chip: "gpiochip0", Line: "27", Pull: "down"}, // active high, by offset
	}}
	r := start(t, m)
	if r.pins[bcmMic].P != gpio.PullUp || r.pins[bcmCamera].P != gpio.PullDown {
		t.Errorf("pulls: mic %s, camera %s; want up, down", r.pins[bcmMic].P, r.pins[bcmCamera].P)
	}
	r.edges(bcmCamera, gpio.High)
	r.clock.Advance(20 * time.Millisecond)
	r.expect(hal.ButtonCamera, hal.Press)
	r.edges(bcmMic, gpio.Low)
	r.clock.Advance(20 * time.Millisecond)
	r.expect(hal.ButtonMic, hal.Press)
	// One button at a time: an edge still on its way to the debouncer when the fake clock
	// jumps counts from the jump (hal/button), and would need a second one.
	r.edges(bcmMic, gpio.High)
	r.clock.Advance(20 * time.Millisecond)
	r.expect(hal.ButtonMic, hal.Release)
	r.edges(bcmCamera, gpio.Low)
	r.clock.Advance(20 * time.Millisecond)
	r.expect(hal.ButtonCamera, hal.Release)
}

func TestHeldVolumeKeyRepeats(t *testing.T) {
	r := start(t, DefaultPinMap())
	r.edges(23, gpio.Low)
	r.clock.Advance(20 * time.Millisecond)
	r.expect(hal.ButtonVolumeUp, hal.Press)
	r.clock.Advance(time.Second)
	r.expect(hal.ButtonVolumeUp, hal.LongPress)
	r.expect(hal.ButtonVolumeUp, hal.Repeat)
}

func TestLEDFollowsSet(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		t.Run(fmt.Sprintf("active_low=%t", activeLow), func(t *testing.T) {
			r := start(t, PinMap{LED: &Pin{Line: "GPIO25", ActiveLow: activeLow}})
			if r.b.Buttons != nil {
				t.Error("buttons without any in the map")
			}
			level := func() bool { return bool(r.pins[bcmLED].Read()) }
			if level() != activeLow {
				t.Errorf("at open the LED pin is %t, want off (%t)", level(), activeLow)
			}
			for _, on := range []bool{true, false, true} {
				if err := r.b.LED.Set(on); err != nil {
					t.Fatal(err)
				}
				if level() != (on != activeLow) {
					t.Errorf("Set(%t): pin %t", on, level())
				}
			}
		})
	}
}

func TestCloseStopsAndEndsReads(t *testing.T) {
	r := start(t, DefaultPinMap())
	r.b.Close()
	if _, err := r.b.Buttons.ReadEvent(r.ctx); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("ReadEvent after Close: %v, want hal.ErrClosed", err)
	}
	// goleak (TestMain) checks that the watchers and the debouncer are gone.
}

func TestBadMapsNameTheKey(t *testing.T) {
	chip, _ := piChip()
	for _, c := range []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown button", "buttons:\n  mute: {line: GPIO17}\n", []string{"buttons.mute", "unknown button", "mic"}},
		{"unknown key", "buttons:\n  mic: {line: GPIO17, colour: red}\n", []string{"colour"}},
		{"bad pull", "buttons:\n  mic: {line: GPIO17, pull: sideways}\n", []string{"buttons.mic.pull", "sideways"}},
		{"no line", "buttons:\n  mic: {pull: up}\n", []string{"buttons.mic.line"}},
		{"offset without chip", "buttons:\n  mic: {line: 17}\n", []string{"buttons.mic.chip", "17"}},
		{"led pull", "led: {line: GPIO25, pull: up}\n", []string{"led.pull"}},
		{"bad chip", "buttons:\n  mic: {chip: gpiochip9, line: 17}\n", []string{"buttons.mic", `chip "gpiochip9"`, "gpiochip0 [pinctrl-bcm2711]"}},
		{"bad line name", "buttons:\n  camera: {line: GPIO99}\n", []string{"buttons.camera", "GPIO99"}},
		{"offset out of range", "buttons:\n  camera: {chip: pinctrl-bcm2711, line: 40}\n", []string{"buttons.camera", "line 40", "0-27"}},
		{"duplicate button", "buttons:\n  mic: {line: GPIO17}\n  camera: {chip: gpiochip0, line: 17}\n", []string{"buttons.camera", "gpiochip0/17", "buttons.mic"}},
		{"led on a button", "buttons:\n  mic: {line: GPIO17}\nled: {line: GPIO17}\n", []string{"led", "buttons.mic"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseConfig([]byte(c.yaml))
			if err == nil {
				var b *Board
				b, err = open(t.Context(), m, sim.NewFakeClock(t0), []Chip{chip})
				if err == nil {
					b.Close()
					t.Fatal("accepted")
				}
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// The YAML in docs/HARDWARE.md is the default map, so the documentation cannot drift.
func TestDocumentedDefault(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/HARDWARE.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(doc, []byte("```yaml\n"))
	block, _, ok2 := bytes.Cut(rest, []byte("```"))
	if !ok || !ok2 {
		t.Fatal("docs/HARDWARE.md has no ```yaml block")
	}
	m, err := ParseConfig(block)
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultPinMap(); !reflect.DeepEqual(m, want) {
		t.Errorf("documented map %+v, DefaultPinMap %+v", m, want)
	}
}

// timerlessPin is a gpiotest pin whose WaitForEdge allocates nothing (gpiotest's makes a
// timer per call), so the benchmark measures this package's path alone.
type timerlessPin struct{ gpiotest.Pin }

func (p *timerlessPin) WaitForEdge(time.Duration) bool {
	_ = p.Out(<-p.EdgesChan)
	return true
}

// BenchmarkEdge measures one raw edge from the line to the debouncer's input.
func BenchmarkEdge(b *testing.B) {
	p := &timerlessPin{gpiotest.Pin{N: "GPIO17", EdgesChan: make(chan gpio.Level, 1)}}
	raw := &rawButtons{names: []string{hal.ButtonMic}, events: make(chan hal.ButtonEvent)}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watcher{name: hal.ButtonMic, pin: p, activeLow: true}.run(ctx, sim.NewFakeClock(t0), raw.events)
	}()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.EdgesChan <- gpio.Level(i%2 == 0)
		if _, err := raw.ReadEvent(ctx); err != nil {
			b.Fatal(err)
		}
	}
	cancel()
	p.EdgesChan <- gpio.Low // the watcher sees ctx end after its next edge
	<-done
}
