package sim_test

import (
	"testing"
	"time"

	"roombox/hal/sim"
)

func TestThermalPlausibleAndSlow(t *testing.T) {
	clock := sim.NewFakeClock(t0)
	b := newBoard(t, sim.Config{Clock: clock})
	if b.HAL().Thermal == nil {
		t.Fatal("the sim board has no thermal sensor")
	}
	prev, err := b.Thermal.Celsius()
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := prev, prev
	for range 600 {
		clock.Advance(time.Second)
		c, err := b.Thermal.Celsius()
		if err != nil {
			t.Fatal(err)
		}
		if d := c - prev; d > 0.2 || d < -0.2 {
			t.Fatalf("temperature jumped %.2f °C in one second (%.2f -> %.2f)", d, prev, c)
		}
		lo, hi, prev = min(lo, c), max(hi, c), c
	}
	if lo < 40 || hi > 60 {
		t.Errorf("temperature range %.1f..%.1f °C over ten minutes, want within 40..60", lo, hi)
	}
	if hi-lo < 1 {
		t.Errorf("temperature range %.1f..%.1f °C over ten minutes: it should drift", lo, hi)
	}
}
