package soak

import (
	"math"
	"testing"
	"time"

	"roombox/internal/testkit/previewtest"
)

// The soak's judgements, checked without a soak (these run in go test ./...).

func TestMuteLogJudge(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newMuteLog(t0)
	l.set(t0.Add(10*time.Second), true)
	l.set(t0.Add(20*time.Second), false)
	for _, c := range []struct {
		at   time.Duration
		want expect
	}{
		{-time.Second, either},
		{time.Second, tone},
		{10*time.Second + muteBudget/2, either},
		{11 * time.Second, silent},
		{20 * time.Second, either},
		{21 * time.Second, tone},
	} {
		if got := l.judge(t0.Add(c.at)); got != c.want {
			t.Errorf("judge(t0%+v) = %v, want %v", c.at, got, c.want)
		}
	}
	// A packet that arrived after the unmute is not judged muted, whatever its RTP time
	// says (the box dropped audio before it); nor one that left before the mute.
	if got := l.judgePacket(t0.Add(21*time.Second), t0.Add(18*time.Second)); got != either {
		t.Errorf("judgePacket(after the unmute, estimated before) = %v, want either", got)
	}
	if got := l.judgePacket(t0.Add(12*time.Second), t0.Add(15*time.Second)); got != silent {
		t.Errorf("judgePacket(both muted) = %v, want silent", got)
	}
	if got, want := l.mutedFor(t0.Add(30*time.Second)), 10*time.Second-muteBudget; got != want {
		t.Errorf("mutedFor = %v, want %v", got, want)
	}
}

// Packets read late by the test (their arrival times delayed) are still placed at the time
// their RTP timestamps say they left.
func TestRTPClockIgnoresReadDelay(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var r rtpClock
	var chunks []previewtest.AudioChunk
	for i := range 10 {
		lag := 300 * time.Millisecond
		if i == 4 {
			lag = 0 // the least delayed packet anchors the clock
		}
		sent := t0.Add(time.Duration(i) * 20 * time.Millisecond)
		chunks = append(chunks, previewtest.AudioChunk{RTPTime: uint32(5000 + 960*i), At: sent.Add(lag)})
	}
	for _, c := range chunks {
		r.observe(c)
	}
	for i, c := range chunks {
		if got, want := r.sent(c), t0.Add(time.Duration(i)*20*time.Millisecond); !got.Equal(want) {
			t.Errorf("packet %d: sent %v, want %v", i, got.Sub(t0), want.Sub(t0))
		}
	}
}

func TestLeakMeasures(t *testing.T) {
	series := func(f func(i int) float64) []sample {
		var ss []sample
		for i := range 12 {
			ss = append(ss, sample{at: time.Duration(i) * 10 * time.Second, goroutines: f(i)})
		}
		return ss
	}
	g := func(s sample) float64 { return s.goroutines }
	linear := series(func(i int) float64 { return 100 + 10*float64(i) }) // +60 a minute
	if got := slopePerMinute(linear, g); math.Abs(got-60) > 1e-9 {
		t.Errorf("slope of a linear series = %v, want 60", got)
	}
	if got := floorGrowth(linear, g); got <= leakFactor {
		t.Errorf("floor growth of 100 -> 210 = %.2f, want a leak (> %.1f)", got, leakFactor)
	}
	// Churn: a steady 100 with spikes to 160 in every third; no leak.
	spiky := series(func(i int) float64 { return 100 + 60*float64(i%2) })
	if got := floorGrowth(spiky, g); got != 1 {
		t.Errorf("floor growth of a steady series with spikes = %.2f, want 1", got)
	}
}
