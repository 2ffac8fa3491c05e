package acoustic

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func newRoom(t testing.TB, cfg Config) *Room {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConvolverMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 200, blockLen, 3*blockLen + 17} {
		h := make([]float64, n)
		for i := range h {
			h[i] = rng.NormFloat64()
		}
		x := make([]float64, 6*blockLen)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		c := newConvolver(h)
		got := make([]float64, len(x))
		for b := 0; b < len(x); b += blockLen {
			c.block(x[b:b+blockLen], got[b:b+blockLen])
		}
		for i := range x {
			var want float64
			for k := 0; k <= i && k < n; k++ {
				want += h[k] * x[i-k]
			}
			if math.Abs(got[i]-want) > 1e-9*(1+math.Abs(want)) {
				t.Fatalf("response of %d taps, sample %d: %g, want %g", n, i, got[i], want)
			}
		}
	}
}

// capture runs the room for n samples: the speaker plays far (zeros past its end) and the
// microphone hears only the room; periods of period samples.
func capture(r *Room, far []int16, n, period int) []int16 {
	mic := make([]int16, n)
	for at := 0; at < n; at += period {
		end := min(at+period, n)
		if at < len(far) {
			r.Play(int64(at), far[at:min(end, len(far))])
		}
		r.Capture(int64(at), mic[at:end])
	}
	return mic
}

func db(ratio float64) float64 { return 10 * math.Log10(ratio) }

// TestImpulseResponse: a click comes back after the delay, at the coupling's energy, and
// its tail decays 60 dB over T60.
func TestImpulseResponse(t *testing.T) {
	const delay, t60 = 100 * time.Millisecond, 300 * time.Millisecond
	r := newRoom(t, Config{Delay: delay, T60: t60, ReverbDB: -5, CouplingDB: -6, Seed: 1})
	click := []int16{20000}
	mic := capture(r, click, SampleRate, 480)
	d := int(samples(delay))
	for i, v := range mic[:d] {
		if v != 0 {
			t.Fatalf("sample %d before the delay is %d", i, v)
		}
	}
	if got := db(Energy(mic) / (20000 * 20000)); math.Abs(got+6) > 0.2 {
		t.Errorf("echo energy %.2f dB of the click's, want -6 (coupling)", got)
	}
	direct := float64(mic[d]) * float64(mic[d])
	if got := db((Energy(mic) - direct) / direct); math.Abs(got+5) > 0.2 {
		t.Errorf("tail %.2f dB of the direct sound, want -5", got)
	}
	// Energy decay (Schroeder): -60 dB at T60 is -30 at T60/2; compare the tail's energy
	// in two 50 ms windows 100 ms apart: 20 dB apart at this T60.
	win := func(from time.Duration) float64 {
		a := d + int(samples(from))
		return Energy(mic[a : a+int(samples(50*time.Millisecond))])
	}
	if got := db(win(50*time.Millisecond) / win(150*time.Millisecond)); math.Abs(got-20) > 3 {
		t.Errorf("tail falls %.1f dB over 100 ms, want 20 (T60 %v)", got, t60)
	}
	if tail := mic[d+int(samples(t60))+1:]; Energy(tail) != 0 {
		t.Errorf("echo continues past T60")
	}
}

// TestPeriodsDoNotMatter: the same room heard in 480-sample and in odd periods is the same,
// noise included: blocks and periods are independent.
func TestPeriodsDoNotMatter(t *testing.T) {
	cfg := Config{Delay: 30 * time.Millisecond, T60: 200 * time.Millisecond, CouplingDB: -3, NoiseDBFS: -50, ClipDBFS: -6, Seed: 7}
	far := make([]int16, SampleRate)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range far {
		far[i] = int16(rng.IntN(40000) - 20000)
	}
	a := capture(newRoom(t, cfg), far, len(far), 480)
	b := capture(newRoom(t, cfg), far, len(far), 441)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("sample %d: %d in 480-sample periods, %d in 441", i, a[i], b[i])
		}
	}
}

func TestNoiseLevel(t *testing.T) {
	mic := capture(newRoom(t, Config{Delay: MinDelay, NoiseDBFS: -40, Seed: 9}), nil, SampleRate, 480)
	rms := math.Sqrt(Energy(mic) / float64(len(mic)))
	if got := 20 * math.Log10(rms/fullScale); math.Abs(got+40) > 0.2 {
		t.Errorf("noise at %.2f dBFS, want -40", got)
	}
	again := capture(newRoom(t, Config{Delay: MinDelay, NoiseDBFS: -40, Seed: 9}), nil, SampleRate, 480)
	if Energy(again) != Energy(mic) {
		t.Error("same seed, different noise")
	}
}

// TestClipping: the loudspeaker never gets louder than its clip level; below it, it is
// nearly linear.
func TestClipping(t *testing.T) {
	r := newRoom(t, Config{Delay: 10 * time.Millisecond, ClipDBFS: -12, Seed: 1})
	far := make([]int16, 4800)
	for i := range far {
		far[i] = int16(30000 * math.Sin(2*math.Pi*440*float64(i)/SampleRate))
	}
	peak := fullScale * math.Pow(10, -12.0/20)
	for i, v := range capture(r, far, len(far), 480) {
		if math.Abs(float64(v)) > peak+1 {
			t.Fatalf("sample %d: %d above the loudspeaker's peak %.0f", i, v, peak)
		}
	}
	quiet := newRoom(t, Config{Delay: 10 * time.Millisecond, ClipDBFS: -12, Seed: 1})
	quiet.Play(0, []int16{800})
	mic := make([]int16, 481)
	quiet.Capture(0, mic)
	if mic[480] < 795 {
		t.Errorf("a quiet sample came back as %d, want ~800", mic[480])
	}
}

func TestNearEndAndDelayChange(t *testing.T) {
	r := newRoom(t, Config{Delay: 20 * time.Millisecond, Seed: 1})
	r.Play(0, []int16{1000})
	mic := make([]int16, 2400)
	mic[5] = 77 // the near end
	r.Capture(0, mic)
	if mic[5] != 77 || mic[960] != 1000 {
		t.Errorf("near end %d (want 77), echo at 20 ms %d (want 1000)", mic[5], mic[960])
	}
	if err := r.SetDelay(30 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r.Play(2400, []int16{1000})
	mic = make([]int16, 2400)
	r.Capture(2400, mic)
	if mic[1440] != 1000 {
		t.Errorf("after SetDelay(30ms), echo at 30 ms %d, want 1000", mic[1440])
	}
	if err := r.SetDelay(time.Millisecond); err == nil {
		t.Error("SetDelay below MinDelay accepted")
	}
}

func TestConfigRange(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Delay: time.Second},
		{Delay: MinDelay, T60: -1},
		{Delay: MinDelay, T60: 3 * time.Second},
		{Delay: MinDelay, CouplingDB: 30},
		{Delay: MinDelay, CouplingDB: math.NaN()},
		{Delay: MinDelay, ReverbDB: -61},
		{Delay: MinDelay, ClipDBFS: 3},
		{Delay: MinDelay, NoiseDBFS: 1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestNoAllocationsPerPeriod(t *testing.T) {
	r := newRoom(t, Config{Delay: 100 * time.Millisecond, T60: 300 * time.Millisecond, ClipDBFS: -6, NoiseDBFS: -60, Seed: 1})
	far, mic := make([]int16, 480), make([]int16, 480)
	var at int64
	if n := testing.AllocsPerRun(200, func() {
		r.Play(at, far)
		r.Capture(at, mic)
		at += 480
	}); n != 0 {
		t.Errorf("%v allocations per period, want 0", n)
	}
}

// BenchmarkRoom is one 10 ms period through a 300 ms room with noise.
func BenchmarkRoom(b *testing.B) {
	r := newRoom(b, Config{Delay: 100 * time.Millisecond, T60: 300 * time.Millisecond, NoiseDBFS: -60, Seed: 1})
	far, mic := make([]int16, 480), make([]int16, 480)
	var at int64
	for b.Loop() {
		r.Play(at, far)
		r.Capture(at, mic)
		at += 480
	}
}
