package soak

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"roombox/internal/testkit/previewtest"
)

const (
	sampleEvery = 10 * time.Second
	// A clear leak: the floor (lowest sample) of the last third of the run after warm-up
	// above the floor of its first third by more than this. Floors, because churn raises
	// single samples (a subscriber's tracks, a preview being replaced, a rejoin's new peer
	// connections: tens of goroutines, some MB) and a leak raises every sample from then
	// on; 50 %, because a slow real leak is not "clear" and the slope is reported for it,
	// while growth by half of the steady state within minutes is no plateau.
	leakFactor = 1.5
	// warmupShare of the run (at least minWarmup) is left out of slopes and the leak rule:
	// the daemon's first join, encoder and pion pools growing to their steady sizes.
	warmupShare = 5
	minWarmup   = 30 * time.Second
	minJudged   = 6 // samples after warm-up needed to judge a leak (two per third)
)

// sample is the daemon's resident memory and goroutine count at a moment of the soak.
type sample struct {
	at         time.Duration // since the sampler started
	rssKB      float64
	goroutines float64
}

// sampler reads /proc/PID/status and the page's /metrics every sampleEvery on its own
// goroutine. samples and errs are read after run has returned.
type sampler struct {
	pid     int
	sess    *previewtest.Session
	samples []sample
	errs    []string
}

func (s *sampler) run(ctx context.Context) {
	start := time.Now()
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		s.take(ctx, time.Since(start))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *sampler) take(ctx context.Context, at time.Duration) {
	rss, err := readRSS(s.pid)
	if err == nil {
		var g float64
		if g, err = goroutines(ctx, s.sess); err == nil {
			s.samples = append(s.samples, sample{at: at, rssKB: rss, goroutines: g})
			return
		}
	}
	if ctx.Err() == nil {
		s.errs = append(s.errs, fmt.Sprintf("%v: %v", at.Round(time.Second), err))
	}
}

// readRSS returns VmRSS from /proc/PID/status, in kB.
func readRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("rss: %q: %w", v, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("rss: no VmRSS in /proc/%d/status (%v)", pid, sc.Err())
}

// goroutines reads go_goroutines from the daemon's /metrics with the page session.
func goroutines(ctx context.Context, sess *previewtest.Session) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sess.Base+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	resp, err := sess.HC.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("metrics: go_goroutines %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("metrics: no go_goroutines (%v)", sc.Err())
}

// slopePerMinute is the least-squares slope of ys over the samples' times, per minute.
func slopePerMinute(ss []sample, y func(sample) float64) float64 {
	n := float64(len(ss))
	var sx, sy, sxx, sxy float64
	for _, s := range ss {
		x := s.at.Minutes()
		sx, sy, sxx, sxy = sx+x, sy+y(s), sxx+x*x, sxy+x*y(s)
	}
	den := n*sxx - sx*sx
	if n < 2 || den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// floorGrowth is the lowest value of the last third of ss over the lowest of the first.
func floorGrowth(ss []sample, y func(sample) float64) float64 {
	third := len(ss) / 3
	floor := func(part []sample) float64 {
		m := y(part[0])
		for _, s := range part[1:] {
			m = min(m, y(s))
		}
		return m
	}
	return floor(ss[len(ss)-third:]) / floor(ss[:third])
}

// reportResources logs the series and, after warm-up, each measure's slope per minute and
// floor growth; it fails the test on a clear leak.
func reportResources(t *testing.T, ss []sample, errs []string, run time.Duration) {
	t.Helper()
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "\n  %5.0fs  RSS %6.1f MB  goroutines %4.0f", s.at.Seconds(), s.rssKB/1024, s.goroutines)
	}
	t.Logf("daemon resources every %v:%s", sampleEvery, b.String())
	if len(errs) > 0 {
		t.Errorf("%d samples failed: %v", len(errs), errs)
	}
	warmup := max(run/warmupShare, minWarmup).Round(time.Second)
	i := 0
	for i < len(ss) && ss[i].at < warmup {
		i++
	}
	judged := ss[i:]
	if len(judged) < minJudged {
		t.Logf("only %d samples after the %v warm-up: too few for slopes (SOAK_DURATION of 2m or more)", len(judged), warmup)
		return
	}
	for _, m := range []struct {
		name, unit string
		scale      float64
		y          func(sample) float64
	}{
		{"RSS", " MB", 1.0 / 1024, func(s sample) float64 { return s.rssKB }},
		{"goroutines", "", 1, func(s sample) float64 { return s.goroutines }},
	} {
		slope, growth := slopePerMinute(judged, m.y), floorGrowth(judged, m.y)
		t.Logf("%s after the %v warm-up: %.1f -> %.1f%s, slope %+.2f%s/min, floor of the last third %.2fx the first's",
			m.name, warmup, m.y(judged[0])*m.scale, m.y(judged[len(judged)-1])*m.scale, m.unit, slope*m.scale, m.unit, growth)
		if growth > leakFactor {
			t.Errorf("%s leak: the floor grew %.2fx over the run (limit %.1fx)", m.name, growth, leakFactor)
		}
	}
}
