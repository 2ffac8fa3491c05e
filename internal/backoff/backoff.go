// Package backoff is the capped exponential wait between retries that roombox's reconnect
// and reopen loops share.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy doubles the wait from Base on each retry up to Max. With Jitter the wait is drawn
// uniformly from the upper half of that, [d/2, d], so that peers which failed together do
// not retry in step.
type Policy struct {
	Base, Max time.Duration
	Jitter    bool
}

// Delay is the wait before retry n, counting from 1: Base for n <= 1, then twice the last,
// at most Max.
func (p Policy) Delay(n int) time.Duration {
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if p.Jitter {
		return d/2 + rand.N(d/2+1)
	}
	return d
}
