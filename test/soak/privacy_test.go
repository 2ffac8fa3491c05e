package soak

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"roombox/hal/sim"
	"roombox/internal/testkit/previewtest"
)

const (
	// As test/e2e/privacy_test.go: a decoded 440 Hz level above silentDBFS while muted is a
	// violation; the sim mic's tone is about -10 dBFS, so above toneDBFS it is heard; and
	// silence must leave the box within muteBudget of it saying muted.
	silentDBFS = -60.0
	toneDBFS   = -30.0
	muteBudget = 500 * time.Millisecond

	// The monitor reads the preview every checkEvery; one silent for stallAfter is reopened
	// (the daemon drops a preview whose connection it judges lost), and one holding
	// maxChunks packets (a minute of audio, with its video) too: it bounds the viewer's
	// memory, and a page's viewers come and go. A preview that cannot be opened for
	// maxUnwatched in a row fails the soak: the page could not show the box, and its privacy
	// went unmeasured.
	checkEvery   = time.Second
	stallAfter   = 5 * time.Second
	maxChunks    = 3000
	openTimeout  = 20 * time.Second
	maxUnwatched = 30 * time.Second
	// keptViolations are described in the failure; the rest are counted.
	keptViolations = 10
	opusClock      = 48000
)

// muteLog is when the mic was muted and unmuted, for judging audio by the time it left.
type muteLog struct {
	mu      sync.Mutex
	changes []muteChange // in time order
}

type muteChange struct {
	at    time.Time
	muted bool
}

func newMuteLog(start time.Time) *muteLog {
	return &muteLog{changes: []muteChange{{at: start, muted: false}}}
}

func (l *muteLog) set(at time.Time, muted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, muteChange{at: at, muted: muted})
}

func (l *muteLog) muted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changes[len(l.changes)-1].muted
}

// expect is what audio that left the box at some time must carry.
type expect int

const (
	either expect = iota // within muteBudget of a change
	silent               // the mic muted
	tone                 // the mic on: the measurement must hear the tone
)

func (l *muteLog) judge(at time.Time) expect {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.changes), func(i int) bool { return l.changes[i].at.After(at) }) - 1
	switch c := l.changes[max(i, 0)]; {
	case i < 0 || at.Before(c.at.Add(muteBudget)):
		return either
	case c.muted:
		return silent
	default:
		return tone
	}
}

// judgePacket judges a packet by when it arrived and when its RTP timestamp says it left,
// and only where both fall in one period. Arrival alone is late by this test's own delays
// in reading (under load, packets sent before a mute look sent after it); the RTP estimate
// alone is early when the box dropped audio (the sim mic skips ahead after a stall, as a
// sound card overruns), which puts packets sent after an unmute before it. A packet's
// arrival is never before it left, and the estimate is never later than its arrival.
func (l *muteLog) judgePacket(arrived, sent time.Time) expect {
	if e := l.judge(arrived); e == l.judge(sent) {
		return e
	}
	return either
}

// mutedFor is how long audio had to be silent up to end: the expected packets' span.
func (l *muteLog) mutedFor(end time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	for i, c := range l.changes {
		to := end
		if i+1 < len(l.changes) {
			to = l.changes[i+1].at
		}
		if c.muted && to.Sub(c.at) > muteBudget {
			d += to.Sub(c.at) - muteBudget
		}
	}
	return d
}

// privacyMonitor watches the preview (exactly what leaves the box) on its own goroutine
// and judges each decoded audio packet against the mute log. Its counters are read after
// run has returned.
type privacyMonitor struct {
	sess  *previewtest.Session
	mutes *muteLog
	logf  func(format string, args ...any)

	v         *previewtest.Viewer
	seen      int       // packets of v judged
	lastAudio time.Time // when v last had new packets
	clock     rtpClock

	silentChecked, toneChecked, toneHeard int
	violations                            []string
	violationCount                        int
	opens                                 int
	reopens                               map[string]int
	openFailures                          int
	unwatchedSince                        time.Time // the first failed open of the current streak
	longestUnwatched                      time.Duration
	lastOpenErr                           error // the last of the longest streak
}

func (m *privacyMonitor) run(ctx context.Context) {
	m.reopens = map[string]int{}
	defer m.closeViewer()
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.check() // what arrived since the last tick
			return
		case <-tick.C:
		}
		if m.v == nil {
			m.open(ctx)
			continue
		}
		switch err := m.check(); {
		case err != nil:
			m.reopen(ctx, fmt.Sprintf("error: %v", err))
		case time.Since(m.lastAudio) > stallAfter:
			m.reopen(ctx, "no audio for "+stallAfter.String())
		case m.seen >= maxChunks:
			m.reopen(ctx, "rotated after a minute")
		}
	}
}

func (m *privacyMonitor) open(ctx context.Context) {
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	v, err := m.sess.Watch(octx)
	if err == nil {
		select {
		case <-v.Connected():
		case <-octx.Done():
			v.Close()
			err = fmt.Errorf("not connected within %v", openTimeout)
		}
	}
	switch {
	case ctx.Err() != nil: // the soak is over
	case err != nil:
		m.openFailures++
		if m.unwatchedSince.IsZero() {
			m.unwatchedSince = time.Now()
			m.logf("privacy: opening the preview: %v (retrying every %v)", err, checkEvery)
		}
		if d := time.Since(m.unwatchedSince); d > m.longestUnwatched {
			m.longestUnwatched, m.lastOpenErr = d, err
		}
	default:
		if !m.unwatchedSince.IsZero() {
			m.logf("privacy: preview open again after %v", time.Since(m.unwatchedSince).Round(time.Second))
			m.unwatchedSince = time.Time{}
		}
		m.v, m.seen, m.lastAudio, m.clock = v, 0, time.Now(), rtpClock{}
		m.opens++
	}
}

func (m *privacyMonitor) reopen(ctx context.Context, why string) {
	m.reopens[why]++
	m.closeViewer()
	m.open(ctx)
}

func (m *privacyMonitor) closeViewer() {
	if m.v != nil {
		m.v.Close()
		m.v = nil
	}
}

// check judges the packets that arrived since the last check.
func (m *privacyMonitor) check() error {
	if m.v == nil {
		return nil
	}
	audio, err := m.v.Audio()
	fresh := audio[m.seen:]
	m.seen = len(audio)
	if len(fresh) > 0 {
		m.lastAudio = time.Now()
	}
	for _, c := range fresh {
		m.clock.observe(c)
	}
	for _, c := range fresh {
		sent := m.clock.sent(c)
		level := sim.ToneDBFS(c.PCM, 440, opusClock)
		switch m.mutes.judgePacket(c.At, sent) {
		case silent:
			m.silentChecked++
			if level > silentDBFS {
				m.violationCount++
				if len(m.violations) < keptViolations {
					m.violations = append(m.violations, fmt.Sprintf("tone at %.1f dBFS in a packet sent at %s (arrived %s) while muted",
						level, sent.Format("15:04:05.000"), c.At.Format("15:04:05.000")))
				}
			}
		case tone:
			m.toneChecked++
			if level > toneDBFS {
				m.toneHeard++
			}
		}
	}
	return err
}

// rtpClock estimates when a packet left the box from its RTP timestamp (48 kHz: the box
// sends a packet every 20 ms, silence included), anchored at the least delayed arrival
// seen, so free of the delays of this test process reading it. See judgePacket for where
// it errs.
type rtpClock struct {
	started bool
	rtp0    uint32
	at0     time.Time
	offset  time.Duration // min over packets of arrival - (at0 + elapsed RTP time)
}

func (r *rtpClock) elapsed(c previewtest.AudioChunk) time.Duration {
	return time.Duration(int32(c.RTPTime-r.rtp0)) * time.Second / opusClock // signed: a reordered packet is earlier
}

func (r *rtpClock) observe(c previewtest.AudioChunk) {
	if !r.started {
		r.started, r.rtp0, r.at0 = true, c.RTPTime, c.At
	}
	r.offset = min(r.offset, c.At.Sub(r.at0.Add(r.elapsed(c))))
}

func (r *rtpClock) sent(c previewtest.AudioChunk) time.Time {
	return r.at0.Add(r.elapsed(c) + r.offset)
}

// report logs what was checked and fails the test on any violation, or if the measurement
// saw nothing while muted, or could not hear the tone while unmuted (then its silence
// proves nothing).
func (m *privacyMonitor) report(t *testing.T, end time.Time) {
	t.Helper()
	muted := m.mutes.mutedFor(end)
	expected := int(muted / (20 * time.Millisecond))
	t.Logf("privacy: %d packets checked silent while muted (%v muted: %d expected, %.0f %%), %d violations; "+
		"tone heard in %d of %d unmuted packets; preview opened %d times (reopened: %v; failed opens %d, at most %v in a row)",
		m.silentChecked, muted.Round(time.Second), expected, 100*float64(m.silentChecked)/float64(max(expected, 1)),
		m.violationCount, m.toneHeard, m.toneChecked, m.opens, m.reopens, m.openFailures, m.longestUnwatched.Round(time.Second))
	if m.violationCount > 0 {
		t.Errorf("privacy: %d packets carried the tone while muted; the first:\n  %s", m.violationCount, strings.Join(m.violations, "\n  "))
	}
	if m.longestUnwatched > maxUnwatched {
		t.Errorf("privacy: the preview could not be opened for %v in a row (%v): the page could not show the box, and its privacy went unmeasured",
			m.longestUnwatched.Round(time.Second), m.lastOpenErr)
	}
	if muted > 5*time.Second && m.silentChecked == 0 {
		t.Errorf("privacy: muted for %v but no packet of the preview was checked", muted.Round(time.Second))
	}
	if m.toneChecked >= 150 && 2*m.toneHeard < m.toneChecked {
		t.Errorf("privacy: the tone was heard in only %d of %d unmuted packets: the measurement cannot be trusted", m.toneHeard, m.toneChecked)
	}
}
