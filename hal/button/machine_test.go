package button

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"roombox/hal"
)

var t0 = time.Date(2026, 7, 28, 9, 0, 0, 0, time.UTC)

const ms = time.Millisecond

func newMachine(repeat ...string) *machine {
	m := &machine{debounce: DefaultDebounce, long: DefaultLongPress, every: DefaultRepeatEvery, now: t0}
	for _, n := range []string{hal.ButtonMic, hal.ButtonCamera, hal.ButtonVolumeUp} {
		m.keys = append(m.keys, key{name: n, repeat: slices.Contains(repeat, n)})
	}
	return m
}

// edges applies level changes of name at the given offsets from t0, alternating from pressed.
func (m *machine) edges(name string, pressed bool, at ...time.Duration) {
	for _, d := range at {
		m.edge(hal.ButtonEvent{Button: name, Pressed: pressed, Time: t0.Add(d)}, time.Time{})
		pressed = !pressed
	}
}

// take advances to t0+d and returns what was reported, as "button kind offset".
func (m *machine) take(d time.Duration) []string {
	m.advance(t0.Add(d))
	var got []string
	for _, ev := range m.queue {
		if ev.Pressed != (ev.Kind == hal.Press) {
			got = append(got, fmt.Sprintf("bad Pressed in %+v", ev))
		}
		got = append(got, fmt.Sprintf("%s %v %v", ev.Button, ev.Kind, ev.Time.Sub(t0)))
	}
	m.queue = m.queue[:0]
	return got
}

func check(t *testing.T, when string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: events %q, want %q", when, got, want)
	}
}

// bouncy returns offsets of a level change at start followed by n bounces (back and forth)
// spread evenly over span.
func bouncy(start time.Duration, n int, span time.Duration) []time.Duration {
	at := []time.Duration{start}
	for i := 1; i <= 2*n; i++ {
		at = append(at, start+span*time.Duration(i)/time.Duration(2*n))
	}
	return at
}

func TestMachineBounces(t *testing.T) {
	m := newMachine()
	m.edges(hal.ButtonMic, true, bouncy(0, 5, 5*ms)...) // settles pressed at 5 ms
	check(t, "19.9 ms after the last bounce", m.take(24900*time.Microsecond))
	check(t, "20 ms after the last bounce", m.take(25*ms), "mic press 5ms")
	m.edges(hal.ButtonMic, false, bouncy(300*ms, 5, 5*ms)...) // settles released at 305 ms
	check(t, "release", m.take(325*ms), "mic release 305ms")
	check(t, "later", m.take(10*time.Second))
}

func TestMachineGlitches(t *testing.T) {
	m := newMachine()
	m.edges(hal.ButtonMic, true, 0, 19*ms)
	check(t, "a 19 ms pulse", m.take(time.Second))

	// A dropout while held neither releases the button nor loses its long press, which
	// was due during the dropout and is reported, on time, once the level is back.
	m.edges(hal.ButtonCamera, true, 2*time.Second)
	check(t, "press", m.take(2020*ms), "camera press 2s")
	m.edges(hal.ButtonCamera, false, 2995*ms)
	check(t, "during the dropout", m.take(3004*ms))
	m.edges(hal.ButtonCamera, true, 3005*ms)
	check(t, "after the dropout", m.take(3006*ms), "camera long-press 3s")
}

func TestMachineLongPress(t *testing.T) {
	m := newMachine()
	m.edges(hal.ButtonMic, true, 0)
	check(t, "press", m.take(20*ms), "mic press 0s")
	check(t, "just before", m.take(999*ms))
	check(t, "at the threshold", m.take(time.Second), "mic long-press 1s")
	check(t, "held on", m.take(5*time.Second))
	m.edges(hal.ButtonMic, false, 5*time.Second)
	check(t, "release", m.take(6*time.Second), "mic release 5s")

	// A press shorter than the threshold, even by a little, is no long press.
	m.edges(hal.ButtonMic, true, 10*time.Second, 10*time.Second+999*ms)
	check(t, "short press", m.take(20*time.Second), "mic press 10s", "mic release 10.999s")
}

func TestMachineRepeat(t *testing.T) {
	m := newMachine(hal.ButtonVolumeUp)
	m.edges(hal.ButtonVolumeUp, true, 0)
	check(t, "held", m.take(1600*ms),
		"volume-up press 0s", "volume-up long-press 1s", "volume-up repeat 1s", "volume-up repeat 1.25s", "volume-up repeat 1.5s")
	m.edges(hal.ButtonVolumeUp, false, 1600*ms)
	check(t, "released", m.take(5*time.Second), "volume-up release 1.6s")

	// A release pending at a repeat's due time holds the repeat back, then drops it.
	m.edges(hal.ButtonVolumeUp, true, 10*time.Second, 11240*ms)
	check(t, "released before a repeat", m.take(20*time.Second),
		"volume-up press 10s", "volume-up long-press 11s", "volume-up repeat 11s", "volume-up release 11.24s")
}

func TestMachineButtonsIndependent(t *testing.T) {
	m := newMachine(hal.ButtonVolumeUp)
	m.edges(hal.ButtonMic, true, 0, 10*ms) // bounces; settles pressed at 15 ms
	m.edges(hal.ButtonVolumeUp, true, 12*ms)
	m.edges(hal.ButtonMic, true, 15*ms)
	m.edges(hal.ButtonCamera, true, 20*ms, 25*ms) // a glitch
	m.edges(hal.ButtonMic, false, 400*ms)
	check(t, "interleaved", m.take(1300*ms),
		"volume-up press 12ms", "mic press 15ms", "mic release 400ms", "volume-up long-press 1.012s",
		"volume-up repeat 1.012s", "volume-up repeat 1.262s")

	// An edge stamped before what has been reported counts as now.
	m.edges(hal.ButtonCamera, true, 0)
	check(t, "late edge", m.take(1320*ms), "camera press 1.3s")
}

func TestMachineIgnoresRepeatedLevel(t *testing.T) {
	m := newMachine()
	m.edges(hal.ButtonMic, true, 0)
	m.edge(hal.ButtonEvent{Button: hal.ButtonMic, Pressed: true, Time: t0.Add(15 * ms)}, time.Time{})
	check(t, "pressed twice", m.take(20*ms), "mic press 0s")

	m.edge(hal.ButtonEvent{Button: "power", Pressed: true}, t0.Add(30*ms))
	check(t, "an unnamed button, no timestamp", m.take(50*ms), "power press 30ms")
}

func TestMachineAllocatesNothing(t *testing.T) {
	m := newMachine(hal.ButtonVolumeUp)
	at := time.Duration(0)
	press, release := bouncy(0, 2, 4*ms), bouncy(1500*ms, 2, 4*ms)
	level := func(pressed bool, offsets []time.Duration) {
		for _, d := range offsets {
			m.edge(hal.ButtonEvent{Button: hal.ButtonVolumeUp, Pressed: pressed, Time: t0.Add(at + d)}, time.Time{})
			pressed = !pressed
		}
	}
	cycle := func() {
		level(true, press)
		m.advance(t0.Add(at + 1500*ms))
		level(false, release)
		m.advance(t0.Add(at + 2*time.Second))
		if len(m.queue) != 6 {
			t.Fatalf("a cycle reported %d events, want 6", len(m.queue))
		}
		m.queue = m.queue[:0]
		at += 2 * time.Second
	}
	cycle() // grows the queue once
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Errorf("%v allocations per press, long press, repeats and release; want 0", n)
	}
}
