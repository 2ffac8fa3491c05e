package alsa

import (
	"context"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"roombox/hal"
	"roombox/hal/sim"
)

func TestBackoffIsCappedAndJittered(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 5: 4 * time.Second, 6: 5 * time.Second, 100: 5 * time.Second} {
		for range 50 {
			if d := openBackoff.Delay(n); d < want/2 || d > want {
				t.Fatalf("openBackoff.Delay(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

// The microphone is absent at first, appears after two failed opens, is unplugged, and
// comes back: ReadPCM waits on the clock between attempts and then delivers the new
// device's periods; the old device is closed and its xruns are kept.
func TestReopeningMicSurvivesUnplug(t *testing.T) {
	first := samples(PeriodFrames, func(i int) int16 { return int16(i + 1) })
	second := samples(PeriodFrames, func(i int) int16 { return int16(-i - 1) })
	a := &fakePCM{par: mono16, src: bytesOf(first), script: []error{errXrun}}
	b := &fakePCM{par: mono16, src: bytesOf(second)}
	notThere := syscall.ENOENT
	names := useFakes(t, openResult{err: notThere}, openResult{err: notThere}, openResult{p: a}, openResult{err: ErrUnplugged}, openResult{p: b})
	clock := sim.NewFakeClock(time.Unix(0, 0))
	m := NewReopeningMic(Config{Device: "plughw:CARD=Device,DEV=0", Clock: clock})
	defer m.Close()
	if m.Format() != audioFormat {
		t.Errorf("Format() = %+v", m.Format())
	}

	ctx := context.Background()
	buf := make([]int16, PeriodFrames)
	done := make(chan error)
	read := func() { done <- m.ReadPCM(ctx, buf) }
	go read()
	for range 2 { // two failed opens, each followed by a wait on the clock
		if err := clock.BlockUntilWaiters(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(m.Err(), notThere) {
			t.Errorf("Err() while absent = %v", m.Err())
		}
		clock.Advance(5 * time.Second)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(buf, first) || m.Err() != nil || m.Xruns() != 1 {
		t.Fatalf("after opening: data ok %v, Err() %v, Xruns() %d", slices.Equal(buf, first), m.Err(), m.Xruns())
	}

	a.mu.Lock()
	a.script = []error{ErrUnplugged}
	a.mu.Unlock()
	go read()
	if err := clock.BlockUntilWaiters(ctx, 1); err != nil { // the first reopen failed
		t.Fatal(err)
	}
	if !a.isClosed() {
		t.Error("the unplugged device was not closed")
	}
	clock.Advance(5 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(buf, second) {
		t.Error("the period after reopening is not the new device's")
	}
	if m.Xruns() != 1 {
		t.Errorf("Xruns() = %d after reopening, want the old device's 1", m.Xruns())
	}
	for _, n := range *names {
		if n != "plughw:CARD=Device,DEV=0" {
			t.Errorf("opened %q", n)
		}
	}
}

func TestReopeningSpeakerCloseEndsBackoff(t *testing.T) {
	useFakes(t, openResult{err: ErrUnplugged})
	clock := sim.NewFakeClock(time.Unix(0, 0))
	sp := NewReopeningSpeaker(Config{Clock: clock})
	done := make(chan error)
	go func() { done <- sp.WritePCM(context.Background(), make([]int16, PeriodFrames)) }()
	if err := clock.BlockUntilWaiters(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("WritePCM waiting to reopen, after Close: %v, want hal.ErrClosed", err)
	}
	if err := sp.WritePCM(context.Background(), make([]int16, PeriodFrames)); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("WritePCM after Close: %v", err)
	}
}

func TestReopeningSpeakerWritesAfterUnplug(t *testing.T) {
	a := &fakePCM{par: mono16, script: []error{ErrUnplugged}}
	b := &fakePCM{par: mono16}
	useFakes(t, openResult{p: a}, openResult{p: b})
	sp := NewReopeningSpeaker(Config{Clock: sim.NewInstantClock(time.Unix(0, 0))})
	defer sp.Close()
	tone := samples(PeriodFrames, func(i int) int16 { return int16(3 * i) })
	if err := sp.WritePCM(context.Background(), tone); err != nil {
		t.Fatal(err)
	}
	if len(a.written) != 0 || !slices.Equal(b.written, bytesOf(tone)) || !a.isClosed() {
		t.Errorf("written to the unplugged device: %d bytes, to the new one: %d; old closed %v", len(a.written), len(b.written), a.isClosed())
	}
}
