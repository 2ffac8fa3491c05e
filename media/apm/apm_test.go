package apm

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"roombox/hal/sim/acoustic"
)

const ms = time.Millisecond

// testRoom is the tests' room: a loudspeaker about a metre from the microphone (its
// reverberation as loud as its direct sound), 100 ms from playing to hearing, T60 300 ms,
// the echo 6 dB below what the speaker is driven with (about the near-end talker's level),
// and a quiet room's noise, -75 dBFS, which bounds any measured ERLE at ~49 dB.
func testRoom() acoustic.Config {
	return acoustic.Config{Delay: 100 * ms, T60: 300 * ms, CouplingDB: -6, NoiseDBFS: -75, Seed: 1}
}

// echoOnly is the far end talking alone for secs seconds (at most its 24.7 s), into cfg's
// processor.
func echoOnly(t testing.TB, secs float64, room acoustic.Config, cfg Config) scene {
	far := farTalker(t)
	far = far[:min(len(far), seconds(secs))]
	return scene{room: room, far: far, near: make([]int16, len(far)), cfg: cfg}
}

func curveString(c []float64, win time.Duration) string {
	var b strings.Builder
	for i, v := range c {
		if i%10 == 0 {
			fmt.Fprintf(&b, "\n  %5.1fs:", (time.Duration(i) * win).Seconds())
		}
		fmt.Fprintf(&b, " %5.1f", v)
	}
	return b.String()
}

// TestERLE: far-end single talk through the room; the canceller takes the echo down by at
// least 30 dB (median of 500 ms windows after the first 2 s), with a clean loudspeaker and
// with one saturating at -12 dBFS. The speaker reports no delay: the canceller finds the
// 100 ms itself. Without the canceller the same measurement reads ~0 dB, so it can fail.
func TestERLE(t *testing.T) {
	saturated := testRoom()
	saturated.ClipDBFS = -12
	ec := Config{EchoCancellation: true, HighPassFilter: true}
	for _, tc := range []struct {
		name     string
		room     acoustic.Config
		cfg      Config
		min, max float64
	}{
		{"clean loudspeaker", testRoom(), ec, 30, math.Inf(1)},
		{"saturated loudspeaker", saturated, ec, 30, math.Inf(1)},
		{"whole chain", testRoom(), DefaultConfig(), 30, math.Inf(1)},
		{"canceller off", testRoom(), Config{HighPassFilter: true}, -3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mic, out := echoOnly(t, 14, tc.room, tc.cfg).run(t)
			win := 500 * ms
			curve := erleCurve(mic, out, 0, seconds(win.Seconds()))
			got := median(curve[int(2*time.Second/win):])
			t.Logf("ERLE median after 2 s: %.1f dB; every 500 ms (NaN: far end pausing):%s", got, curveString(curve, win))
			if !(got >= tc.min && got <= tc.max) {
				t.Errorf("ERLE median %.1f dB, want %g..%g", got, tc.min, tc.max)
			}
		})
	}
}

// reconvergence is how long after the start of c (an ERLE curve in windows of win) the
// ERLE's median over the next second first reaches want dB; -1 if it never does.
func reconvergence(c []float64, win time.Duration, want float64) time.Duration {
	span := int(time.Second / win)
	for i := 0; i+span <= len(c); i++ {
		if median(c[i:i+span]) >= want {
			return time.Duration(i) * win
		}
	}
	return -1
}

// TestReconvergence: the echo path's delay jumps by 50 ms, unreported, 8 s in; the speaker
// reports the delay the path had before (as an ALSA speaker reports its buffer, while the
// jump is somewhere it cannot see). The canceller is back to 30 dB within 2 s of a longer
// path and within 3 s of a shorter one (the echo then arrives before the filter's window,
// and the delay estimator has to move the window).
func TestReconvergence(t *testing.T) {
	for _, tc := range []struct {
		jump   time.Duration
		within time.Duration
	}{
		{+50 * ms, 2 * time.Second},
		{-50 * ms, 3 * time.Second},
	} {
		t.Run(fmt.Sprintf("%+dms", tc.jump.Milliseconds()), func(t *testing.T) {
			// All of the far end's talk: 16 s after the jump, where the delay estimator
			// makes its own late correction (see BENCHMARKS.md).
			s := echoOnly(t, 25, testRoom(), Config{EchoCancellation: true, HighPassFilter: true})
			s.reported = s.room.Delay
			s.jumpAt, s.jumpTo = seconds(8), s.room.Delay+tc.jump
			mic, out := s.run(t)
			win := 250 * ms
			before := median(erleCurve(mic, out, seconds(4), seconds(win.Seconds()))[:int(4*time.Second/win)])
			after := erleCurve(mic, out, s.jumpAt, seconds(win.Seconds()))
			took := reconvergence(after, win, 30)
			t.Logf("ERLE %.1f dB before the jump; back to 30 dB after %v; every 250 ms from the jump:%s", before, took, curveString(after, win))
			if before < 30 {
				t.Fatalf("not converged before the jump: %.1f dB", before)
			}
			if took < 0 || took > tc.within {
				t.Errorf("reconverged after %v, want within %v", took, tc.within)
			}
		})
	}
}

// TestDoubleTalk: a near-end talker joins 6 s into the far end's talk. In the canceller's
// output the near-end speech (its projection, so residual echo does not count) stays within
// 6 dB of its level with the far end silent.
func TestDoubleTalk(t *testing.T) {
	far, near := farTalker(t), nearTalker(t)
	far = far[:seconds(6)+len(near)]
	nearAt := at(near, seconds(6), len(far))
	from, to := seconds(6), len(far)/Frame*Frame
	for _, tc := range []struct {
		name   string
		cfg    Config
		assert bool
	}{
		{"canceller", Config{EchoCancellation: true, HighPassFilter: true}, true},
		{"whole chain", DefaultConfig(), false}, // logged: the gain control raises both
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, alone := scene{room: testRoom(), near: nearAt, cfg: tc.cfg}.run(t)
			lag := latency(alone, nearAt, from, to)
			_, both := scene{room: testRoom(), far: far, near: nearAt, cfg: tc.cfg}.run(t)
			a, b := gainOf(alone, nearAt, from, to, lag), gainOf(both, nearAt, from, to, lag)
			t.Logf("near end %+.2f dB alone, %+.2f dB in double talk: %.2f dB lower (processing latency %.1f ms)",
				a, b, a-b, float64(lag)/48)
			if tc.assert && math.Abs(a-b) > 6 {
				t.Errorf("near end %.2f dB lower in double talk, want within 6 dB", a-b)
			}
		})
	}
}

// TestNoiseSuppression: the near end talks in stationary noise 24 dB below it; high noise
// suppression lowers the noise by at least 12 dB (measured where nobody talks) and keeps the
// speech within 3 dB.
func TestNoiseSuppression(t *testing.T) {
	near := nearTalker(t)
	n := (seconds(4) + len(near) + seconds(3)) / Frame * Frame
	nearAt := at(near, seconds(4), n)
	room := testRoom()
	room.NoiseDBFS = -50
	for _, level := range []NoiseSuppression{NoiseModerate, NoiseHigh} {
		cfg := Config{NoiseSuppression: level, HighPassFilter: true}
		mic, out := scene{room: room, near: nearAt, cfg: cfg}.run(t)
		var quietIn, quietOut float64 // 1.5 s after the start and after the talk, to adapt
		for _, seg := range [][2]int{{seconds(1.5), seconds(4)}, {seconds(4) + len(near) + seconds(1.5), n}} {
			quietIn += acoustic.Energy(mic[seg[0]:seg[1]])
			quietOut += acoustic.Energy(out[seg[0]:seg[1]])
		}
		from, to := seconds(4), seconds(4)+len(near)
		speech := gainOf(out, nearAt, from, to, latency(out, nearAt, from, to))
		reduction := db(quietIn / quietOut)
		t.Logf("level %d: noise %.1f dB lower, speech %+.2f dB", level, reduction, speech)
		if level == NoiseHigh && (reduction < 12 || math.Abs(speech) > 3) {
			t.Errorf("high: noise %.1f dB lower (want >= 12), speech %+.2f dB (want within 3)", reduction, speech)
		}
	}
}

// TestFarEndPeriods: the speaker's periods need not be 10 ms; 1024-sample periods (an ALSA
// default) are re-framed and cancelled as well.
func TestFarEndPeriods(t *testing.T) {
	s := echoOnly(t, 14, testRoom(), Config{EchoCancellation: true, HighPassFilter: true})
	s.farPeriod = 1024
	mic, out := s.run(t)
	got := median(erleCurve(mic, out, seconds(2), seconds(0.5)))
	t.Logf("1024-sample periods: ERLE median %.1f dB", got)
	if got < 30 {
		t.Errorf("1024-sample periods: ERLE %.1f dB, want >= 30", got)
	}
}

// TestSetConfig: settings change on the running processor. Switching on voice detection
// leaves the canceller converged; switched off, the echo passes; switched on again, it
// starts afresh and converges as it did at first.
func TestSetConfig(t *testing.T) {
	on := Config{EchoCancellation: true, HighPassFilter: true}
	vad := on
	vad.VoiceDetection = true
	off := vad
	off.EchoCancellation = false
	s := echoOnly(t, 22, testRoom(), on)
	s.every = func(p *Processor, k int) {
		var err error
		switch k {
		case seconds(5):
			err = p.SetConfig(vad)
		case seconds(10):
			err = p.SetConfig(off)
		case seconds(15):
			err = p.SetConfig(vad)
		}
		if err != nil {
			t.Error(err)
		}
	}
	mic, out := s.run(t)
	win := 500 * ms
	curve := erleCurve(mic, out, 0, seconds(win.Seconds()))
	stretch := func(from, to float64) float64 { return median(curve[int(from/win.Seconds()):int(to/win.Seconds())]) }
	first, vadOn, during, again := stretch(2, 5), stretch(5, 10), stretch(10, 15), stretch(17, 22)
	t.Logf("ERLE %.1f dB, %.1f with voice detection switched on, %.1f with the canceller off, %.1f on again (2 s after); every 500 ms:%s",
		first, vadOn, during, again, curveString(curve, win))
	if first < 30 || vadOn < 30 || math.Abs(during) > 3 || again < 30 {
		t.Errorf("ERLE %.1f / %.1f / %.1f / %.1f dB, want >= 30, >= 30, ~0, >= 30", first, vadOn, during, again)
	}
}

// TestInputGain: with nothing else on, the frame comes out as it went in, times the gain.
func TestInputGain(t *testing.T) {
	p := newProcessor(t, Config{InputGainDB: 20 * math.Log10(2)})
	in := make([]int16, Frame)
	for i := range in {
		in[i] = int16(20000 * math.Sin(2*math.Pi*float64(i)/48))
	}
	for range 10 {
		frame := append([]int16(nil), in...)
		if err := p.ProcessCapture(frame); err != nil {
			t.Fatal(err)
		}
		for i, v := range frame {
			want := int16(max(min(2*int(in[i]), math.MaxInt16), math.MinInt16))
			if d := int(v) - int(want); d < -1 || d > 1 {
				t.Fatalf("sample %d: %d in, %d out, want %d", i, in[i], v, want)
			}
		}
	}
}

// hangover is how many frames WebRTC's voice detector keeps flagging speech after it ends.
const hangover = 10

// TestLast: the level of each processed frame in -dBov and its speech flag.
func TestLast(t *testing.T) {
	p := newProcessor(t, Config{VoiceDetection: true})
	if level, voice := p.Last(); level != Silence || voice {
		t.Errorf("before any frame: (%d, %v), want (%d, false)", level, voice, Silence)
	}
	frame := make([]int16, Frame)
	process := func() {
		if err := p.ProcessCapture(frame); err != nil {
			t.Fatal(err)
		}
	}
	// A sine peaking at -20 dBFS has an RMS 23 dB below a full-scale square wave.
	for i := range frame {
		frame[i] = int16(3277 * math.Sin(2*math.Pi*float64(i)/48))
	}
	process()
	if level, _ := p.Last(); level < 22 || level > 24 {
		t.Errorf("-20 dBFS sine: level %d, want 23", level)
	}
	clear(frame)
	process()
	if level, _ := p.Last(); level != Silence {
		t.Errorf("silence: level %d, want %d", level, Silence)
	}

	// Speech: most frames where the talker is loud are flagged, and no silent one once the
	// detector's hangover (a few frames) has passed.
	near := nearTalker(t)
	var loud, loudVoiced, quiet, quietVoiced, silentFor int
	for k := 0; k+Frame <= len(near)+seconds(1); k += Frame {
		clear(frame)
		if k < len(near) {
			copy(frame, near[k:])
		}
		e := acoustic.Energy(frame)
		process()
		_, voice := p.Last()
		silentFor++
		if e != 0 {
			silentFor = 0
		}
		switch {
		case silentFor > hangover:
			quiet++
			if voice {
				quietVoiced++
			}
		case db(e/Frame/(32768*32768)) > -35:
			loud++
			if voice {
				loudVoiced++
			}
		}
	}
	t.Logf("speech flag on %d of %d loud frames, %d of %d silent ones", loudVoiced, loud, quietVoiced, quiet)
	if loudVoiced < loud*3/4 || quietVoiced > 0 {
		t.Errorf("speech flag on %d of %d loud frames (want 3/4), %d of %d silent ones (want 0)", loudVoiced, loud, quietVoiced, quiet)
	}

	if err := p.SetConfig(Config{}); err != nil {
		t.Fatal(err)
	}
	copy(frame, near[seconds(1):])
	process()
	if level, voice := p.Last(); level != Silence || voice {
		t.Errorf("voice detection off: (%d, %v), want (%d, false)", level, voice, Silence)
	}
}

func newProcessor(t testing.TB, cfg Config) *Processor {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestConfigChecked(t *testing.T) {
	for _, cfg := range []Config{
		{NoiseSuppression: -1},
		{NoiseSuppression: NoiseVeryHigh + 1},
		{InputGainDB: math.NaN()},
		{InputGainDB: MaxInputGainDB + 1},
		{InputGainDB: MinInputGainDB - 1},
		{CaptureDelay: -ms},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	p := newProcessor(t, DefaultConfig())
	if err := p.SetConfig(Config{InputGainDB: math.Inf(1)}); err == nil {
		t.Error("SetConfig with infinite gain accepted")
	}
	if err := p.ProcessCapture(make([]int16, Frame-1)); err == nil {
		t.Error("a short frame accepted")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Played(make([]int16, Frame), 0) // ignored
	if err := p.ProcessCapture(make([]int16, Frame)); !errors.Is(err, ErrClosed) {
		t.Errorf("ProcessCapture after Close: %v, want ErrClosed", err)
	}
	if err := p.SetConfig(DefaultConfig()); !errors.Is(err, ErrClosed) {
		t.Errorf("SetConfig after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestConcurrentUse: the far end, the capture and configuration changes from three
// goroutines at once (run with -race to check the Go side).
func TestConcurrentUse(t *testing.T) {
	p := newProcessor(t, DefaultConfig())
	far, near := farTalker(t), nearTalker(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := 0; k+1024 <= seconds(3); k += 1024 {
			p.Played(far[k:k+1024], 20*ms)
		}
	})
	wg.Go(func() {
		frame := make([]int16, Frame)
		for k := 0; k+Frame <= seconds(3); k += Frame {
			copy(frame, near[k:])
			if err := p.ProcessCapture(frame); err != nil {
				t.Error(err)
				return
			}
			p.Last()
		}
	})
	wg.Go(func() {
		cfg := DefaultConfig()
		for i := range 50 {
			cfg.NoiseSuppression = NoiseSuppression(i % 5)
			cfg.EchoCancellation = i%3 != 0
			if err := p.SetConfig(cfg); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
}

// TestNoAllocationsPerFrame: a far-end period and a capture frame through the whole chain
// allocate nothing, whatever the far end's period.
func TestNoAllocationsPerFrame(t *testing.T) {
	p := newProcessor(t, DefaultConfig())
	far, near := farTalker(t), nearTalker(t)
	for _, period := range []int{Frame, 1024, 441} {
		k := 0
		frame := make([]int16, Frame)
		if n := testing.AllocsPerRun(200, func() {
			p.Played(far[k:k+period], 20*ms)
			copy(frame, near[k:])
			if err := p.ProcessCapture(frame); err != nil {
				t.Fatal(err)
			}
			p.Last()
			k = (k + Frame) % seconds(2)
		}); n != 0 {
			t.Errorf("%d-sample far-end periods: %v allocations per frame, want 0", period, n)
		}
	}
}

// BenchmarkProcessor is the CPU per 10 ms frame: one far-end frame and one captured frame
// (speech, echo of speech through the tests' room), for the whole chain and parts of it.
func BenchmarkProcessor(b *testing.B) {
	far := farTalker(b)
	room, err := acoustic.New(testRoom())
	if err != nil {
		b.Fatal(err)
	}
	mic := at(nearTalker(b), seconds(6), len(far)/Frame*Frame)
	for k := 0; k < len(mic); k += Frame {
		room.Play(int64(k), far[k:k+Frame])
		room.Capture(int64(k), mic[k:k+Frame])
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"all", DefaultConfig()},
		{"echo", Config{EchoCancellation: true}},
		{"noise", Config{NoiseSuppression: NoiseHigh}},
		{"gain", Config{GainControl: true}},
		{"none", Config{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p, err := New(tc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			frame := make([]int16, Frame)
			k := 0
			for b.Loop() {
				p.Played(far[k:k+Frame], 0)
				copy(frame, mic[k:])
				if err := p.ProcessCapture(frame); err != nil {
					b.Fatal(err)
				}
				k = (k + Frame) % (len(mic) - Frame)
			}
		})
	}
}
