package media

import (
	"context"
	"math"
	"testing"

	"roombox/hal/sim"
)

func energy(x []int16) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return e
}

// toneFrames returns n 20 ms frames of the simulated microphone's tone at hz (0: its
// default, 440 Hz).
func toneFrames(tb testing.TB, hz float64, n int) [][]int16 {
	tb.Helper()
	b, err := sim.New(sim.Config{ToneHz: hz, Clock: sim.NewInstantClock(t0)})
	if err != nil {
		tb.Fatal(err)
	}
	frames := make([][]int16, n)
	for i := range frames {
		frames[i] = make([]int16, OpusFrameSamples)
		for off := 0; off < OpusFrameSamples; off += sim.PeriodSamples {
			if err := b.Mic.ReadPCM(context.Background(), frames[i][off:off+sim.PeriodSamples]); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return frames
}

func TestOpusRoundTripKeepsTone(t *testing.T) {
	enc, err := NewOpusEncoder(32_000)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewOpusDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	total := 0
	for _, f := range toneFrames(t, 0, 50) {
		pkt, err := enc.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		total += len(pkt)
		pcm, err := dec.Decode(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if len(pcm) != OpusFrameSamples {
			t.Fatalf("decoded %d samples", len(pcm))
		}
		out = append(out, pcm...)
	}
	t.Logf("1 s of tone in %d bytes (%.1f kbit/s)", total, float64(total)*8/1000)
	steady := out[OpusFrameSamples*5:]
	// Elsewhere at least 20 dB below the tone: a power ratio of 1e-2.
	on := sim.ToneDBFS(steady, 440, OpusSampleRate)
	for _, off := range []float64{220, 330, 550, 880, 1000, 3000} {
		if lvl := sim.ToneDBFS(steady, off, OpusSampleRate); lvl > on-20 {
			t.Errorf("%g Hz reads %.1f dBFS, only %.1f dB below the 440 Hz tone's %.1f", off, lvl, on-lvl, on)
		}
	}
	if db := sim.DBFS(math.Sqrt(energy(steady) / float64(len(steady)))); math.Abs(db+13) > 1 {
		t.Errorf("decoded tone at %.1f dBFS, want about -13", db)
	}
	if _, err := enc.Encode(make([]int16, 480)); err == nil {
		t.Error("10 ms frame accepted")
	}
	if err := enc.SetBitrate(-5); err == nil {
		t.Error("negative bitrate accepted")
	}
}

func TestOpusEncodeAllocs(t *testing.T) {
	enc, err := NewOpusEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	frames := toneFrames(t, 0, 10)
	i := 0
	if n := testing.AllocsPerRun(100, func() {
		if _, err := enc.Encode(frames[i%len(frames)]); err != nil {
			t.Fatal(err)
		}
		i++
	}); n != 0 {
		t.Fatalf("Encode allocates %v times per frame", n)
	}
}

func BenchmarkOpusEncode20ms(b *testing.B) {
	enc, err := NewOpusEncoder(32_000)
	if err != nil {
		b.Fatal(err)
	}
	frames := toneFrames(b, 0, 50)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := enc.Encode(frames[i%len(frames)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
