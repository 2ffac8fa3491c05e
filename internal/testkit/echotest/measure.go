// Package echotest measures echo the way the far end hears it: a participant sends a
// signal into the room, and how much of that same signal comes back in what the box sends
// is found by cross-correlation and a least-squares fit against what was sent. Speech
// from espeak-ng for the talker, a talker that records both sides on one timeline, and
// the measure itself, for the end-to-end test (test/e2e) and the VM lab's guest.
package echotest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Rate is the sample rate of everything here: Opus's and the boards', 48 kHz.
const Rate = 48000

// Samples is d in samples at Rate.
func Samples(d time.Duration) int { return int(d * Rate / time.Second) }

// Duration is n samples at Rate as a duration.
func Duration(n int) time.Duration { return time.Duration(n) * time.Second / Rate }

// Options of Measure. The zero value of each field takes its default.
type Options struct {
	// MinLag..MaxLag is where the echo may be: how much later than it was sent a sample
	// comes back (default 0..1.5 s).
	MinLag, MaxLag time.Duration
	// Window is how much of what was heard one lag and one fit cover (default 1 s): the
	// echo path may change between windows (a jitter buffer adapting, a device skipping
	// ahead after falling behind) but not within one.
	Window time.Duration
	// Pre and Post are the fit's reach before and after the lag (default 2 ms and 20 ms):
	// the direct sound and the start of the room's reverberation.
	Pre, Post time.Duration
	// Lags are more lags (beside each window's own) that every window is fitted at, the
	// stronger fit kept: where the echo was found before, so a weak echo the correlation
	// cannot place is still measured there.
	Lags []time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxLag == 0 {
		o.MaxLag = 1500 * time.Millisecond
	}
	if o.Window == 0 {
		o.Window = time.Second
	}
	if o.Pre == 0 {
		o.Pre = 2 * time.Millisecond
	}
	if o.Post == 0 {
		o.Post = 20 * time.Millisecond
	}
	return o
}

// Window is one window's measure.
type Window struct {
	From int           // its first sample (heard's index)
	Lag  time.Duration // where its echo was fitted
	// EchoDB is the energy of the fit (the part of the heard signal that is the sent
	// signal, delayed and filtered) relative to the sent signal's energy over the same
	// samples; LevelDB is everything heard relative to the same (echo plus all else).
	EchoDB, LevelDB float64
	Active          bool // the sent signal was loud enough here to count (see Result)
}

// Result is the echo over a stretch of what was heard.
type Result struct {
	// EchoDB is the echo's energy relative to what was sent, over the active windows
	// (those whose sent energy is within 20 dB of the loudest window's): -20 dB is an echo
	// 20 dB weaker than the talker. The floor for white noise at the heard side is about
	// that noise's level minus 10*log10(window samples / fit taps) below it.
	EchoDB float64
	// MedianDB is the median of the active windows' EchoDB: the echo most of the time,
	// unmoved by one window where the path jumped.
	MedianDB float64
	// LevelDB is everything heard relative to what was sent, over the same windows: an
	// upper bound of the echo that needs no correlation (noise counts too).
	LevelDB float64
	// Lag is the median of the active windows' lags.
	Lag     time.Duration
	Windows []Window
	Active  int // how many windows counted
}

// Measure finds how much of sent comes back in heard[from:to]. Both are on one timeline:
// heard[i] was heard at the time sent[i] was sent, so the echo of sent[i] is at heard[i+lag]
// (indices outside sent count as silence). heard[from:to] is cut into windows; in each, the
// lag is where heard's envelope correlates best with sent's (1 ms steps), refined on the
// waveform, and the echo is the least-squares FIR fit of heard from sent around that lag
// (Options.Pre..Post), at the lag or any of Options.Lags, whichever explains more.
func Measure(sent, heard []int16, from, to int, o Options) Result {
	o = o.withDefaults()
	from, to = max(from, 0), min(to, len(heard))
	win := Samples(o.Window)
	var r Result
	var sentE []float64
	for a := from; a+win <= to; a += win {
		w, se := measureWindow(sent, heard, a, a+win, o)
		r.Windows = append(r.Windows, w)
		sentE = append(sentE, se)
	}
	loudest := 0.0
	for _, e := range sentE {
		loudest = max(loudest, e)
	}
	var echo, level, sentSum float64
	var dbs []float64
	var lags []time.Duration
	for i := range r.Windows {
		w := &r.Windows[i]
		if sentE[i] <= 0 || sentE[i] < loudest/100 {
			continue
		}
		w.Active = true
		r.Active++
		echo += sentE[i] * math.Pow(10, w.EchoDB/10)
		level += sentE[i] * math.Pow(10, w.LevelDB/10)
		sentSum += sentE[i]
		dbs = append(dbs, w.EchoDB)
		lags = append(lags, w.Lag)
	}
	if r.Active == 0 {
		r.EchoDB, r.MedianDB, r.LevelDB = math.NaN(), math.NaN(), math.NaN()
		return r
	}
	r.EchoDB, r.LevelDB = dB(echo/sentSum), dB(level/sentSum)
	slices.Sort(dbs)
	slices.Sort(lags)
	r.MedianDB = (dbs[(len(dbs)-1)/2] + dbs[len(dbs)/2]) / 2
	r.Lag = lags[len(lags)/2]
	return r
}

func dB(ratio float64) float64 { return 10 * math.Log10(max(ratio, 1e-30)) }

// at is sent[i], silence outside it.
func at(sent []int16, i int) float64 {
	if i < 0 || i >= len(sent) {
		return 0
	}
	return float64(sent[i])
}

// measureWindow measures heard[a:b]; it returns the window and the sent energy the echo is
// relative to (0: nothing was sent there).
func measureWindow(sent, heard []int16, a, b int, o Options) (Window, float64) {
	w := Window{From: a}
	y := make([]float64, b-a)
	var ey float64
	for i := range y {
		y[i] = float64(heard[a+i])
		ey += y[i] * y[i]
	}
	pre, post := Samples(o.Pre), Samples(o.Post)
	// x holds sent[a-maxLag-post .. b-minLag+pre): every sample any fit needs.
	minLag, maxLag := Samples(o.MinLag), Samples(o.MaxLag)
	for _, l := range o.Lags {
		minLag, maxLag = min(minLag, Samples(l)), max(maxLag, Samples(l))
	}
	x0 := a - maxLag - post
	x := make([]float64, b-minLag+pre-x0)
	for i := range x {
		x[i] = at(sent, x0+i)
	}
	// xAt(lag) is sent aligned with y at that lag: xAt(lag)[i] = sent[a+i-lag].
	xAt := func(lag int) []float64 { return x[a-lag-x0 : a-lag-x0+len(y)] }

	lags := []int{bestLag(x, y, a-x0, Samples(o.MinLag), Samples(o.MaxLag))}
	for _, l := range o.Lags {
		lags = append(lags, Samples(l))
	}
	best, bestLag, bestSent := -1.0, lags[0], 0.0
	for _, lag := range lags {
		fit := fitEnergy(x, y, a-x0, lag, pre, post)
		if fit > best {
			best, bestLag = fit, lag
			bestSent = energy(xAt(lag))
		}
	}
	w.Lag = Duration(bestLag)
	if bestSent == 0 {
		return w, 0
	}
	w.EchoDB = dB(min(best, ey) / bestSent)
	w.LevelDB = dB(ey / bestSent)
	return w, bestSent
}

func energy(v []float64) float64 {
	var e float64
	for _, s := range v {
		e += s * s
	}
	return e
}

// block is the envelope's step: 1 ms.
const block = Rate / 1000

// bestLag is the lag in [minLag, maxLag] at which y (x[off:] at lag 0) echoes x best: the
// peak of the correlation of their 1 ms envelopes, refined to the sample on the waveforms
// within a few blocks of it.
func bestLag(x, y []float64, off, minLag, maxLag int) int {
	env := func(v []float64) []float64 {
		e := make([]float64, len(v)/block)
		var mean float64
		for k := range e {
			e[k] = math.Sqrt(energy(v[k*block : (k+1)*block]))
			mean += e[k]
		}
		mean /= float64(max(len(e), 1))
		for k := range e {
			e[k] -= mean
		}
		return e
	}
	// The envelopes start at y's first sample and at x's first sample maxLag earlier;
	// envelope lag d (blocks) pairs ey[k] with ex[k + maxLag/block - d].
	ey := env(y)
	first := off - maxLag
	ex := env(x[first:min(len(x), off+len(y))])
	coarse, best := minLag, math.Inf(-1)
	for d := (minLag + block - 1) / block; d <= maxLag/block; d++ {
		shift := maxLag/block - d
		var c float64
		for k := range ey {
			if j := k + shift; j >= 0 && j < len(ex) {
				c += ey[k] * ex[j]
			}
		}
		if c > best {
			best, coarse = c, d*block+(maxLag%block)
		}
	}
	// Refine on the waveform: |correlation| within 4 blocks either side.
	fine, bestC := coarse, -1.0
	for lag := max(minLag, coarse-4*block); lag <= min(maxLag, coarse+4*block); lag++ {
		xs := x[off-lag : off-lag+len(y)]
		var c float64
		for i, v := range y {
			c += v * xs[i]
		}
		if c = math.Abs(c); c > bestC {
			bestC, fine = c, lag
		}
	}
	return fine
}

// fitEnergy is the energy of the least-squares fit of y by an FIR filter of x over lags
// lag-pre..lag+post: y[i] ≈ Σ h[k] x[off+i-lag-k], k in -pre..post. The normal equations use
// x's autocorrelation over the window (a Toeplitz matrix), solved by Levinson's recursion;
// the fit's energy is then h·p, p the cross-correlation.
func fitEnergy(x, y []float64, off, lag, pre, post int) float64 {
	n := pre + post + 1
	// Tap j (0..n-1) is x delayed by lag-pre+j: column j is x[off+i-lag+pre-j].
	base := off - lag + pre
	col := func(j int) []float64 { return x[base-j : base-j+len(y)] }
	r := make([]float64, n)
	x0 := col(0)
	for k := range n {
		xk := col(k)
		var s float64
		for i, v := range x0 {
			s += v * xk[i]
		}
		r[k] = s
	}
	if r[0] == 0 {
		return 0
	}
	r[0] *= 1 + 1e-6 // a little diagonal loading keeps the recursion stable
	p := make([]float64, n)
	for j := range n {
		xj := col(j)
		var s float64
		for i, v := range y {
			s += v * xj[i]
		}
		p[j] = s
	}
	h := levinson(r, p)
	var fit float64
	for j := range n {
		fit += h[j] * p[j]
	}
	return max(fit, 0)
}

// levinson solves T h = p for the symmetric Toeplitz matrix T whose first row is r.
func levinson(r, p []float64) []float64 {
	n := len(r)
	f := make([]float64, 1, n) // T_k f = e_1
	h := make([]float64, 1, n) // T_k h = p[:k]
	f[0] = 1 / r[0]
	h[0] = p[0] / r[0]
	nf := make([]float64, n)
	for k := 1; k < n; k++ {
		var ef, eh float64
		for i := range k {
			ef += r[k-i] * f[i]
			eh += r[k-i] * h[i]
		}
		d := 1 - ef*ef
		if d <= 1e-12 {
			break // singular beyond here: keep the shorter fit (the rest of h zero)
		}
		// f' = ([f;0] - ef [0;rev f]) / d; the backward vector is f' reversed.
		nf = nf[:k+1]
		for i := 0; i <= k; i++ {
			var a, b float64
			if i < k {
				a = f[i]
			}
			if i > 0 {
				b = f[k-i]
			}
			nf[i] = (a - ef*b) / d
		}
		f, nf = nf[:k+1], f
		h = append(h, 0)
		g := p[k] - eh
		for i := 0; i <= k; i++ {
			h[i] += g * f[k-i]
		}
	}
	return append(h, make([]float64, n-len(h))...)
}

// TalkAfter is the index of sent at which d of talk (10 ms frames above -50 dBFS) has been
// said from index from on: when an echo canceller that started listening at from has had d
// of far end to converge on. len(sent) if sent ends first.
func TalkAfter(sent []int16, from int, d time.Duration) int {
	const frame = Rate / 100
	threshold := float64(frame) * math.Pow(32768*math.Pow(10, -50.0/20), 2)
	need := Samples(d)
	i := max(from, 0)
	for ; i+frame <= len(sent) && need > 0; i += frame {
		var e float64
		for _, v := range sent[i : i+frame] {
			e += float64(v) * float64(v)
		}
		if e > threshold {
			need -= frame
		}
	}
	return i
}

// String is the result in one line, for a test's log: the whole measure, then each window
// as echo/heard dB@lag, inactive ones marked "-".
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "echo %.1f dB (median %.1f dB; all heard %.1f dB), lag %v, %d active windows; per window (echo/heard dB@lag):",
		r.EchoDB, r.MedianDB, r.LevelDB, r.Lag.Round(time.Millisecond), r.Active)
	for _, w := range r.Windows {
		mark := " "
		if !w.Active {
			mark = "-"
		}
		fmt.Fprintf(&b, " %s%.1f/%.1f@%v", mark, w.EchoDB, w.LevelDB, w.Lag.Round(time.Millisecond))
	}
	return b.String()
}
