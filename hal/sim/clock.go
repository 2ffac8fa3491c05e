package sim

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"roombox/hal"
)

// Clock is the time source of the simulated devices: hal.Clock, which hal.WallClock,
// FakeClock and InstantClock implement.
type Clock = hal.Clock

// FakeClock is a manual clock for tests: time moves only when Advance or Set is called.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	changed chan struct{} // closed and replaced whenever the set of waiters grows
}

type fakeWaiter struct {
	until time.Time
	done  chan struct{}
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Wait blocks until the fake time reaches t or ctx ends.
func (c *FakeClock) Wait(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if !t.After(c.now) {
		c.mu.Unlock()
		return nil
	}
	w := fakeWaiter{until: t, done: make(chan struct{})}
	c.waiters = append(c.waiters, w)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()

	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		c.remove(w.done)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Advance moves the fake time forward by d and releases the waiters that are due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.until.After(c.now) {
			kept = append(kept, w)
			continue
		}
		close(w.done)
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
}

// Waiters reports how many Wait calls are blocked.
func (c *FakeClock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// BlockUntilWaiters returns once at least n Wait calls are blocked, or when ctx ends.
func (c *FakeClock) BlockUntilWaiters(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		k, changed := len(c.waiters), c.changed
		c.mu.Unlock()
		if k >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *FakeClock) remove(done chan struct{}) {
	for i, w := range c.waiters {
		if w.done == done {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

// pacer schedules events at start + n/rate seconds, n counted in units (frames or samples)
// from the first event, so the schedule never drifts. A consumer later than maxLag skips
// ahead to the current unit, as a real device drops frames or overruns its buffer.
type pacer struct {
	clock   Clock
	rate    int64 // units per second
	maxLag  time.Duration
	start   time.Time
	n       int64 // units elapsed at the next event
	started bool
}

// at is the time unit n is due.
func (p *pacer) at(n int64) time.Time {
	sec := n / p.rate
	rem := n % p.rate
	return p.start.Add(time.Duration(sec)*time.Second + time.Duration(rem*int64(time.Second)/p.rate))
}

// next waits until unit n+ahead is due, where n is the next event's unit, then advances
// by step units and returns n. The first call starts the schedule at the clock's Now.
func (p *pacer) next(ctx context.Context, ahead, step int64) (int64, error) {
	if !p.started {
		p.start, p.started = p.clock.Now(), true
	}
	due := p.at(p.n + ahead)
	if now := p.clock.Now(); now.Sub(due) > p.maxLag {
		el := now.Sub(p.start)
		p.n = int64(el/time.Second)*p.rate + int64(el%time.Second)*p.rate/int64(time.Second) - ahead
		due = p.at(p.n + ahead)
	}
	if err := p.clock.Wait(ctx, due); err != nil {
		return 0, err
	}
	n := p.n
	p.n += step
	return n, nil
}

// InstantClock never blocks: Wait moves its time forward to the deadline at once, so the
// simulated devices run as fast as their reader while their timestamps advance as in real
// time. For benchmarks and offline tests. Safe for concurrent use.
type InstantClock struct {
	ns atomic.Int64 // Unix nanoseconds
}

// NewInstantClock returns an InstantClock reading start.
func NewInstantClock(start time.Time) *InstantClock {
	c := &InstantClock{}
	c.ns.Store(start.UnixNano())
	return c
}

// Now returns the clock's time.
func (c *InstantClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Wait moves the clock to t if t is later, and returns ctx.Err().
func (c *InstantClock) Wait(ctx context.Context, t time.Time) error {
	for ns := t.UnixNano(); ; {
		cur := c.ns.Load()
		if ns <= cur || c.ns.CompareAndSwap(cur, ns) {
			break
		}
	}
	return ctx.Err()
}
