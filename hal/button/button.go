// Package button turns the raw, bouncy edges of any hal.Buttons (a GPIO pin, an evdev key)
// into clean events: an edge counts only once the level has been stable for a debounce
// window (the "denoise" of periph's gpioutil.Debounce), a button held for the long-press
// time reports one LongPress, and buttons configured to repeat report Repeat while held.
//
// The events are a function of the edges' timestamps alone: each carries the time it
// happened (an edge's time, or the due time of a LongPress or Repeat), so a late reader or
// a fake clock moved in one big step sees the same events as a punctual one.
package button

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"roombox/hal"
)

// Defaults for the zero fields of Config.
const (
	DefaultDebounce    = 20 * time.Millisecond
	DefaultLongPress   = time.Second
	DefaultRepeatEvery = 250 * time.Millisecond
)

// edgeQueue is how many raw edges may wait between the source reader and the debouncer.
const edgeQueue = 16

// Config sets up Buttons; zero fields take the defaults.
type Config struct {
	// Debounce is how long a level must be stable before its edge counts.
	Debounce time.Duration
	// LongPress is how long a button must be held, from its press, for a LongPress.
	LongPress time.Duration
	// Repeat names the buttons that report Repeat while held (the volume keys): the first
	// right after the LongPress, then every RepeatEvery.
	Repeat      []string
	RepeatEvery time.Duration
}

// Buttons are clean buttons read from a raw source. It is a hal.Buttons; ReadEvent returns
// events only while Run is running.
type Buttons struct {
	src   hal.Buttons
	clock hal.Clock
	out   chan hal.ButtonEvent
	done  chan struct{} // closed when Run returns; err is set before
	err   error

	mu       sync.Mutex
	started  bool
	stopWait context.CancelFunc // interrupts Run's clock wait when an edge arrives; nil if none

	m machine // owned by Run's loop
}

// New returns clean buttons reading raw edges from src, timed by clock. Only the level of
// src's events (Pressed) and their Time are used; a zero Time means "now".
func New(src hal.Buttons, clock hal.Clock, cfg Config) (*Buttons, error) {
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.LongPress == 0 {
		cfg.LongPress = DefaultLongPress
	}
	if cfg.RepeatEvery == 0 {
		cfg.RepeatEvery = DefaultRepeatEvery
	}
	switch {
	case cfg.Debounce < 0 || cfg.RepeatEvery < 0:
		return nil, fmt.Errorf("button: negative debounce %v or repeat interval %v", cfg.Debounce, cfg.RepeatEvery)
	case cfg.LongPress <= cfg.Debounce:
		// A long press shorter than the window would be due before its press counts.
		return nil, fmt.Errorf("button: long press %v must be longer than the debounce window %v", cfg.LongPress, cfg.Debounce)
	}
	names := src.Names()
	for _, r := range cfg.Repeat {
		if !slices.Contains(names, r) {
			return nil, fmt.Errorf("button: repeat: unknown button %q (buttons: %v)", r, names)
		}
	}
	b := &Buttons{
		src:   src,
		clock: clock,
		out:   make(chan hal.ButtonEvent),
		done:  make(chan struct{}),
		m:     machine{debounce: cfg.Debounce, long: cfg.LongPress, every: cfg.RepeatEvery},
	}
	for _, n := range names {
		b.m.keys = append(b.m.keys, key{name: n, repeat: slices.Contains(cfg.Repeat, n)})
	}
	return b, nil
}

// Names returns the source's button names.
func (b *Buttons) Names() []string { return b.src.Names() }

// ReadEvent returns the next clean event, blocking until there is one, Run ends or ctx ends.
func (b *Buttons) ReadEvent(ctx context.Context) (hal.ButtonEvent, error) {
	select {
	case ev := <-b.out:
		return ev, nil
	case <-b.done:
		return hal.ButtonEvent{}, b.err
	case <-ctx.Done():
		return hal.ButtonEvent{}, fmt.Errorf("button: %w", ctx.Err())
	}
}

// Run reads the source and produces events until ctx ends or the source fails, and returns
// why. It owns one goroutine reading the source and waits for it before returning. Run may
// be called once.
func (b *Buttons) Run(ctx context.Context) error {
	b.mu.Lock()
	started := b.started
	b.started = true
	b.mu.Unlock()
	if started {
		return errors.New("button: Run called twice")
	}
	err := b.run(ctx)
	b.err = fmt.Errorf("button: %w: %w", hal.ErrClosed, err)
	close(b.done)
	return err
}

func (b *Buttons) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	edges := make(chan hal.ButtonEvent, edgeQueue)
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { readErr <- b.read(ctx, edges) })
	defer func() {
		cancel()
		wg.Wait()
	}()

	for {
		// Now is read before the edges are taken: an edge that arrives later is applied in
		// the next round, never after deadlines past its own time have fired.
		now := b.clock.Now()
	drain:
		for {
			select {
			case ev := <-edges:
				b.m.edge(ev, now)
			default:
				break drain
			}
		}
		b.m.advance(now)
		for _, ev := range b.m.queue {
			select {
			case b.out <- ev:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		b.m.queue = b.m.queue[:0]

		due, ok := b.m.next()
		if !ok {
			select {
			case ev := <-edges:
				b.m.edge(ev, b.clock.Now())
			case err := <-readErr:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		if err := b.wait(ctx, due, edges); err != nil {
			return err
		}
		select {
		case err := <-readErr:
			return err
		default:
		}
	}
}

// wait blocks until the clock reaches due, an edge arrives, or ctx ends. An edge can make
// an earlier deadline (a release while a long press is pending), so it interrupts the wait.
func (b *Buttons) wait(ctx context.Context, due time.Time, edges chan hal.ButtonEvent) error {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	b.mu.Lock()
	b.stopWait = stop
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.stopWait = nil
		b.mu.Unlock()
	}()
	// The reader queues an edge before it interrupts: one queued before stopWait was set
	// is seen here, one queued after finds stopWait set.
	if len(edges) > 0 {
		return nil
	}
	if err := b.clock.Wait(wctx, due); err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// read moves raw edges from the source to edges until ctx ends or the source fails.
func (b *Buttons) read(ctx context.Context, edges chan<- hal.ButtonEvent) error {
	defer b.interrupt() // Run learns of the error at once
	for {
		ev, err := b.src.ReadEvent(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("button: read: %w", err)
		}
		select {
		case edges <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.interrupt()
	}
}

func (b *Buttons) interrupt() {
	b.mu.Lock()
	if b.stopWait != nil {
		b.stopWait()
	}
	b.mu.Unlock()
}

// machine is the debouncer proper: edges and time in, events out. It allocates nothing
// once its queue has grown to the largest burst.
type machine struct {
	debounce, long, every time.Duration

	keys  []key
	now   time.Time         // time advanced to; edges earlier than it count as at it
	queue []hal.ButtonEvent // events produced, oldest first
}

// key is one button's state.
type key struct {
	name   string
	repeat bool

	level   bool      // the latest raw level
	changed time.Time // when level last changed
	down    bool      // the debounced level
	held    time.Time // while down: when the next LongPress or Repeat is due; zero if none
	longed  bool      // the LongPress of this press has been reported
}

// due is when k next has something to report. A pending level change defers LongPress and
// Repeat: if it turns out to be the release, the button was not held that long.
func (k *key) due(debounce time.Duration) (time.Time, bool) {
	switch {
	case k.level != k.down:
		return k.changed.Add(debounce), true
	case k.down && !k.held.IsZero():
		return k.held, true
	}
	return time.Time{}, false
}

// edge applies a raw edge; now stands in for a missing timestamp.
func (m *machine) edge(ev hal.ButtonEvent, now time.Time) {
	t := ev.Time
	if t.IsZero() {
		t = now
	}
	if t.Before(m.now) {
		t = m.now
	}
	m.advance(t)
	i := slices.IndexFunc(m.keys, func(k key) bool { return k.name == ev.Button })
	if i < 0 {
		// A button the source did not name: debounce it all the same.
		m.keys = append(m.keys, key{name: ev.Button})
		i = len(m.keys) - 1
	}
	k := &m.keys[i]
	if ev.Pressed == k.level {
		return // a repeated report of the same level is no edge
	}
	k.level, k.changed = ev.Pressed, t
}

// next returns the earliest time something is due.
func (m *machine) next() (time.Time, bool) {
	var first time.Time
	found := false
	for i := range m.keys {
		if t, ok := m.keys[i].due(m.debounce); ok && (!found || t.Before(first)) {
			first, found = t, true
		}
	}
	return first, found
}

// advance reports, in time order, everything due up to now.
func (m *machine) advance(now time.Time) {
	for {
		var k *key
		var at time.Time
		for i := range m.keys {
			if t, ok := m.keys[i].due(m.debounce); ok && !t.After(now) && (k == nil || t.Before(at)) {
				k, at = &m.keys[i], t
			}
		}
		if k == nil {
			break
		}
		m.fire(k, at)
	}
	if now.After(m.now) {
		m.now = now
	}
}

// fire reports what k has due at at.
func (m *machine) fire(k *key, at time.Time) {
	switch {
	case k.level != k.down:
		k.down = k.level
		kind := hal.Release
		k.held = time.Time{}
		if k.down {
			kind = hal.Press
			k.held, k.longed = k.changed.Add(m.long), false
		}
		m.emit(k.name, kind, k.changed)
	case !k.longed:
		k.longed = true
		if !k.repeat {
			k.held = time.Time{}
		}
		m.emit(k.name, hal.LongPress, at)
	default:
		k.held = at.Add(m.every)
		m.emit(k.name, hal.Repeat, at)
	}
}

func (m *machine) emit(name string, kind hal.ButtonKind, at time.Time) {
	m.queue = append(m.queue, hal.ButtonEvent{Button: name, Kind: kind, Pressed: kind == hal.Press, Time: at})
}
