package sim_test

import (
	"context"
	"testing"
	"time"

	"roombox/hal/sim"
	"roombox/hal/sim/acoustic"
)

// TestRoomEcho: with a room, what the speaker plays is heard by the microphone after the
// room's delay, counted from when it was played, on top of the microphone's own tone; the
// speaker starting 50 ms after the microphone changes nothing.
func TestRoomEcho(t *testing.T) {
	const delay = 20 * time.Millisecond
	ctx := context.Background()
	run := func(room *acoustic.Config) []int16 {
		b := newBoard(t, sim.Config{Clock: sim.NewInstantClock(t0), Room: room})
		buf, click := make([]int16, sim.PeriodSamples), make([]int16, sim.PeriodSamples)
		var pcm []int16
		for k := range 10 {
			if k >= 5 { // the speaker starts at 50 ms; a click at its first sample
				click[0] = 0
				if k == 5 {
					click[0] = 8000
				}
				if err := b.Speaker.WritePCM(ctx, click); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Mic.ReadPCM(ctx, buf); err != nil {
				t.Fatal(err)
			}
			pcm = append(pcm, buf...)
		}
		return pcm
	}
	tone := run(nil)
	heard := run(&acoustic.Config{Delay: delay})
	at := 5*sim.PeriodSamples + int(delay.Seconds()*sim.SampleRate)
	for i := range heard {
		want := tone[i]
		if i == at {
			want += 8000
		}
		if heard[i] != want {
			t.Fatalf("sample %d: %d, want %d (tone %d, click due at %d)", i, heard[i], want, tone[i], at)
		}
	}
}

func TestRoomConfigChecked(t *testing.T) {
	if _, err := sim.New(sim.Config{Room: &acoustic.Config{}}); err == nil {
		t.Error("a room with no delay accepted")
	}
}
