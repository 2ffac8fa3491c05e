package apm

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"roombox/hal/sim/acoustic"
	"roombox/internal/testkit/echotest"
)

// Two talkers, spoken by espeak-ng at test time: the far end (the room's remote
// participants, played by the speaker) and the near end (someone at the table).
const (
	farText = "The quarterly numbers are in, and they look better than we expected. " +
		"Sales in the northern region grew by twelve percent, while costs stayed flat. " +
		"We should talk about hiring for the second half of the year, and about the new office. " +
		"Marketing wants a bigger budget for the launch in September. " +
		"I think we can afford it, if the trend holds through the summer. " +
		"Let me share the slides with everyone before the end of the day."
	nearText = "Sorry to interrupt, but could you repeat the last figure? " +
		"The connection dropped for a moment on our side, and we missed the part about costs. " +
		"Also, is the launch still planned for the first week of September?"
)

var speechCache sync.Map // voice, text and level -> []int16

// speech is echotest.Speech (espeak-ng through sox, scaled to dbfs), made once per voice,
// text and level for all the tests here.
func speech(t testing.TB, voice, text string, dbfs float64) []int16 {
	t.Helper()
	key := fmt.Sprint(voice, "\x00", text, "\x00", dbfs)
	if pcm, ok := speechCache.Load(key); ok {
		return pcm.([]int16)
	}
	pcm, _ := speechCache.LoadOrStore(key, echotest.Speech(t, voice, text, dbfs))
	return pcm.([]int16)
}

func farTalker(t testing.TB) []int16  { return speech(t, "en-us", farText, -20) }
func nearTalker(t testing.TB) []int16 { return speech(t, "en+f3", nearText, -26) }

// seconds is the number of samples in s seconds.
func seconds(s float64) int { return int(s * 48000) }

// at returns pcm placed at sample from in a signal of n samples (cut to fit).
func at(pcm []int16, from, n int) []int16 {
	out := make([]int16, n)
	if from < n {
		copy(out[from:], pcm)
	}
	return out
}

// scene is a room box in a room: the far end comes out of its speaker, the near end talks,
// the microphone hears both and the room, and the processor works on what it hears.
type scene struct {
	room      acoustic.Config
	far, near []int16 // as long as the scene; zeros where silent
	cfg       Config
	// farPeriod is the speaker's period (default Frame); reported is the delay it reports
	// beyond its own buffer's.
	farPeriod int
	reported  time.Duration
	// At sample jumpAt (if > 0) the echo path's delay becomes jumpTo.
	jumpAt int
	jumpTo time.Duration
	// every, if set, runs after each frame k (its first sample) is processed.
	every func(p *Processor, k int)
}

// run plays the scene and returns what the microphone heard and what the processor made of
// it.
func (s scene) run(t testing.TB) (mic, out []int16) {
	t.Helper()
	room, err := acoustic.New(s.room)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	n := len(s.near) / Frame * Frame
	period := s.farPeriod
	if period == 0 {
		period = Frame
	}
	mic, out = make([]int16, n), make([]int16, n)
	played := 0
	for k := 0; k < n; k += Frame {
		if s.jumpAt > 0 && k == s.jumpAt/Frame*Frame {
			if err := room.SetDelay(s.jumpTo); err != nil {
				t.Fatal(err)
			}
		}
		// Now is the end of frame k, when the microphone has recorded it. The speaker is
		// written a period at a time and kept a period ahead of now, as a sound card's
		// buffer is; a period written now starts to be heard when now reaches it, which is
		// the delay it reports (plus what it was told to).
		now := k + Frame
		for ; played < now+period; played += period {
			chunk := make([]int16, period)
			if played < len(s.far) {
				copy(chunk, s.far[played:])
			}
			room.Play(int64(played), chunk)
			p.Played(chunk, s.reported+time.Duration(played-now)*time.Second/48000)
		}
		frame := mic[k : k+Frame]
		copy(frame, s.near[k:])
		room.Capture(int64(k), frame)
		copy(out[k:k+Frame], frame)
		if err := p.ProcessCapture(out[k : k+Frame]); err != nil {
			t.Fatal(err)
		}
		if s.every != nil {
			s.every(p, k)
		}
	}
	return mic, out
}

func db(ratio float64) float64 { return 10 * math.Log10(ratio) }

// erleCurve is the echo return loss enhancement, 10 log10(mic energy / output energy), in
// windows of win samples from sample from on. Windows where the microphone hears little
// (the far end pausing: 25 dB below the loudest window) are NaN: their ratio is mostly the
// noise floor's.
func erleCurve(mic, out []int16, from, win int) []float64 {
	var loudest float64
	for a := from; a+win <= len(mic); a += win {
		loudest = max(loudest, acoustic.Energy(mic[a:a+win]))
	}
	var c []float64
	for a := from; a+win <= len(mic); a += win {
		e := acoustic.Energy(mic[a : a+win])
		if e < loudest/316 {
			c = append(c, math.NaN())
			continue
		}
		c = append(c, db(e/max(acoustic.Energy(out[a:a+win]), 1)))
	}
	return c
}

func median(v []float64) float64 {
	var s []float64
	for _, x := range v {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

// gainOf is how loud ref is in out, in dB relative to ref itself, over out[from:to]: the
// projection of out onto ref (shifted by lag samples, the processing's latency), so what
// else out holds (echo, noise) does not count.
func gainOf(out, ref []int16, from, to, lag int) float64 {
	var dot, rr float64
	for i := from; i < to; i++ {
		if i-lag < 0 {
			continue
		}
		r := float64(ref[i-lag])
		dot += float64(out[i]) * r
		rr += r * r
	}
	return 20 * math.Log10(max(dot, 1e-9)/rr)
}

// latency is the lag (0..maxLatency samples) at which out correlates best with ref, found
// on the first two seconds of out[from:to].
func latency(out, ref []int16, from, to int) int {
	to = min(to, from+seconds(2))
	best, lag := math.Inf(-1), 0
	for l := 0; l <= maxLatency; l++ {
		var dot float64
		for i := from; i < to; i++ {
			dot += float64(out[i]) * float64(ref[i-l])
		}
		if dot > best {
			best, lag = dot, l
		}
	}
	return lag
}

// maxLatency bounds the processing's latency: 30 ms (the canceller and the noise suppressor
// together delay by ~14 ms).
const maxLatency = 3 * Frame
