package media

import (
	"context"
	"math"
	"testing"

	"roombox/hal/sim"
)

// goertzel returns the power of frequency hz in x, sampled at 48 kHz.
func goertzel(x []int16, hz float64) float64 {
	k := 2 * math.Cos(2*math.Pi*hz/OpusSampleRate)
	var s1, s2 float64
	for _, v := range x {
		s := float64(v) + k*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - k*s1*s2
}

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
	on := goertzel(steady, 440)
	for _, off := range []float64{220, 330, 550, 880, 1000, 3000} {
		if p := goertzel(steady, off); p*100 > on {
			t.Errorf("power at %g Hz is %.3g of the 440 Hz tone's", off, p/on)
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
