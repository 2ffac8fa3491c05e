package hal_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"roombox/hal"
)

func TestWallClockWait(t *testing.T) {
	var c hal.WallClock
	ctx := context.Background()
	start := time.Now()
	if err := c.Wait(ctx, start.Add(20*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("Wait returned after %v", el)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Wait(cctx, time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if n := testing.AllocsPerRun(20, func() { _ = c.Wait(ctx, time.Now().Add(time.Microsecond)) }); n != 0 {
		t.Errorf("WallClock.Wait allocates %v times", n)
	}
}
