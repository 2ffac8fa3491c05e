package appliance

import "time"

// prober tries a layer the estimate does not carry yet. gcc raises its estimate to at most
// 1.5 times the rate it sees arrive and pion sends no probes, and an encoder given a layer's
// surplus may not fill it (simple pictures compress below any target), so the estimate can
// stall below the next layer for good. Sending that layer for a while is the probe: if the
// link carries it, the estimate rises and share keeps it; if the estimate falls instead, it
// goes again and the next trial waits twice as long.
type prober struct {
	layer   int       // on trial; -1: none
	until   time.Time // the trial's end
	start   int       // the estimate when it began
	next    time.Time // no trial before
	backoff time.Duration
	refused int // the estimate when a trial last failed; 0 after one succeeded
}

const (
	trialFor     = 4 * time.Second
	firstBackoff = 5 * time.Second
	maxBackoff   = time.Minute
	// trialAbort: a trial ends early when the estimate falls below this share (percent) of
	// where it started: the link is saying no.
	trialAbort = 85
	// recoveredShare: an estimate this share (percent) of the one a trial was refused at
	// ends the backoff.
	recoveredShare = 130
)

func newProber() prober { return prober{layer: -1, backoff: firstBackoff} }

// adjust runs after share, on its rates and sent, with the estimate and the time: it starts,
// keeps or ends a trial of candidate (the next larger layer someone wants, -1 for none).
// dropped says share has just turned a layer off: no trial for a backoff from then.
func (p *prober) adjust(now time.Time, target, candidate int, dropped bool, want, rates []int, sent []bool) {
	if dropped && p.layer < 0 {
		p.next = later(p.next, now.Add(p.backoff))
	}
	if p.layer < 0 && p.refused > 0 && target >= p.refused*recoveredShare/100 {
		// The estimate rose well past where the link last said no: it got better, so the
		// backoff that piled up while it was bad no longer applies.
		p.backoff, p.next, p.refused = firstBackoff, now, 0
	}
	switch {
	case p.layer >= 0 && target < p.start*trialAbort/100:
		p.fail(now, target)
		return
	case p.layer >= 0 && now.Before(p.until):
	case p.layer >= 0:
		if !sent[p.layer] {
			p.fail(now, target)
			return
		}
		p.backoff, p.refused = firstBackoff, 0 // carried: it stays, as share keeps it
		p.layer, p.next = -1, now.Add(p.backoff)
		return
	case candidate >= 0 && target > 0 && !now.Before(p.next) && !p.next.IsZero():
		p.layer, p.until, p.start = candidate, now.Add(trialFor), target
	default:
		if p.next.IsZero() && candidate >= 0 {
			p.next = now.Add(p.backoff)
		}
		return
	}
	sent[p.layer] = true
	rates[p.layer] = max(rates[p.layer], want[p.layer]*keepShare/100)
}

func (p *prober) fail(now time.Time, target int) {
	p.backoff = min(2*p.backoff, maxBackoff)
	p.layer, p.next, p.refused = -1, now.Add(p.backoff), target
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
