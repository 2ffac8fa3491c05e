package echotest

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// talk is n samples of speech-like noise: Gaussian bursts of 150-400 ms at about -20 dBFS
// with pauses of 50-300 ms between them, from seed.
func talk(n int, seed uint64) []int16 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]int16, n)
	for i := 0; i < n; {
		burst := Samples(time.Duration(150+rng.IntN(250)) * time.Millisecond)
		for k := 0; k < burst && i < n; k, i = k+1, i+1 {
			env := math.Sin(math.Pi * float64(k) / float64(burst))
			out[i] = int16(3277 * 1.4 * env * rng.NormFloat64())
		}
		i += Samples(time.Duration(50+rng.IntN(250)) * time.Millisecond)
	}
	return out
}

// room returns heard: each tap (delay in samples, gain) of sent, plus white noise at
// noiseDBFS (none for 0).
func room(sent []int16, taps map[int]float64, noiseDBFS float64, seed uint64) []int16 {
	rng := rand.New(rand.NewPCG(seed, 9))
	sigma := 0.0
	if noiseDBFS != 0 {
		sigma = 32768 * math.Pow(10, noiseDBFS/20)
	}
	out := make([]int16, len(sent))
	for i := range out {
		v := sigma * rng.NormFloat64()
		for d, g := range taps {
			v += g * at(sent, i-d)
		}
		out[i] = int16(max(min(math.Round(v), math.MaxInt16), math.MinInt16))
	}
	return out
}

func TestMeasureFindsEchoLevelAndLag(t *testing.T) {
	sent := talk(Samples(6*time.Second), 1)
	lag := Samples(187500 * time.Microsecond)
	// A direct path and a reflection 4 ms later: 0.01 + 0.0025 of the energy, -19.0 dB.
	heard := room(sent, map[int]float64{lag: 0.1, lag + 192: 0.05}, -70, 2)
	r := Measure(sent, heard, Samples(time.Second), len(heard), Options{})
	t.Logf("echo %.2f dB (median %.2f, level %.2f), lag %v, %d active windows", r.EchoDB, r.MedianDB, r.LevelDB, r.Lag, r.Active)
	if want := 10 * math.Log10(0.0125); math.Abs(r.EchoDB-want) > 0.3 || math.Abs(r.MedianDB-want) > 0.3 {
		t.Errorf("echo %.2f dB (median %.2f), want %.2f", r.EchoDB, r.MedianDB, want)
	}
	if r.Lag != Duration(lag) {
		t.Errorf("lag %v, want %v", r.Lag, Duration(lag))
	}
	if r.Active < 4 {
		t.Errorf("%d active windows of %d, want at least 4", r.Active, len(r.Windows))
	}
}

func TestMeasureWeakEchoAboveNoise(t *testing.T) {
	sent := talk(Samples(6*time.Second), 3)
	lag := Samples(300 * time.Millisecond)
	// -45 dB of echo (about -65 dBFS while talking) in noise at -80 dBFS.
	heard := room(sent, map[int]float64{lag: math.Pow(10, -45.0/20)}, -80, 4)
	r := Measure(sent, heard, Samples(time.Second), len(heard), Options{})
	t.Logf("echo %.2f dB (median %.2f, level %.2f), lag %v", r.EchoDB, r.MedianDB, r.LevelDB, r.Lag)
	if math.Abs(r.EchoDB+45) > 1 {
		t.Errorf("echo %.2f dB, want -45 ±1", r.EchoDB)
	}
}

// TestMeasureNoEcho: noise alone reads as an echo at its floor, 10*log10(window / taps) =
// 16.6 dB below the noise's own level (which Level reports, an upper bound).
func TestMeasureNoEcho(t *testing.T) {
	sent := talk(Samples(6*time.Second), 5)
	heard := room(sent, nil, -60, 6)
	r := Measure(sent, heard, Samples(time.Second), len(heard), Options{})
	t.Logf("echo %.2f dB (median %.2f, level %.2f), lag %v", r.EchoDB, r.MedianDB, r.LevelDB, r.Lag)
	if r.EchoDB > r.LevelDB-15 {
		t.Errorf("echo %.2f dB from noise alone, want at least 15 dB below the noise's level, %.2f dB", r.EchoDB, r.LevelDB)
	}
}

// TestMeasureFollowsLagJump: each window finds its own lag, so a path that jumps by 60 ms
// halfway is measured at full strength on both sides.
func TestMeasureFollowsLagJump(t *testing.T) {
	sent := talk(Samples(8*time.Second), 7)
	half := Samples(4 * time.Second)
	a := room(sent, map[int]float64{Samples(200 * time.Millisecond): 0.2}, -70, 8)
	b := room(sent, map[int]float64{Samples(260 * time.Millisecond): 0.2}, -70, 8)
	heard := append(a[:half:half], b[half:]...)
	r := Measure(sent, heard, Samples(time.Second), len(heard), Options{})
	t.Logf("echo %.2f dB (median %.2f), lag %v", r.EchoDB, r.MedianDB, r.Lag)
	for _, w := range r.Windows {
		want := 200 * time.Millisecond
		if w.From >= half {
			want = 260 * time.Millisecond
		}
		if w.Active && (w.Lag != want || math.Abs(w.EchoDB+14) > 0.5) {
			t.Errorf("window at %v: lag %v, echo %.2f dB; want %v, -14 dB", Duration(w.From), w.Lag, w.EchoDB, want)
		}
	}
}

// TestMeasureAtGivenLag: an echo too weak for the envelopes to place is still measured at a
// lag given in Options.Lags.
func TestMeasureAtGivenLag(t *testing.T) {
	sent := talk(Samples(6*time.Second), 9)
	lag := Samples(400 * time.Millisecond)
	heard := room(sent, map[int]float64{lag: math.Pow(10, -50.0/20)}, -62, 10)
	r := Measure(sent, heard, Samples(time.Second), len(heard), Options{Lags: []time.Duration{Duration(lag)}})
	t.Logf("echo %.2f dB (median %.2f, level %.2f), lag %v", r.EchoDB, r.MedianDB, r.LevelDB, r.Lag)
	if r.EchoDB < -52 {
		t.Errorf("echo %.2f dB, want about -50 (it is there, at the lag given)", r.EchoDB)
	}
}

func TestLevinson(t *testing.T) {
	r := []float64{4, 2, 1, 0.5}
	p := []float64{1, -2, 3, 0.25}
	h := levinson(r, p)
	for i := range r {
		var s float64
		for j := range r {
			k := i - j
			if k < 0 {
				k = -k
			}
			s += r[k] * h[j]
		}
		if math.Abs(s-p[i]) > 1e-9 {
			t.Fatalf("row %d: %g, want %g (h %v)", i, s, p[i], h)
		}
	}
}
