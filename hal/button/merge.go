package button

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"roombox/hal"
)

// Merged is the events of several button sources as one hal.Buttons: a board's GPIO
// buttons and a USB speakerphone's keys drive the same device. Run relays them.
type Merged struct {
	srcs   []hal.Buttons
	events chan hal.ButtonEvent
	done   chan struct{}
	err    error // why Run ended; read after done is closed
}

// Merge returns the events of srcs as one source; Run must be running to deliver them.
func Merge(srcs ...hal.Buttons) *Merged {
	return &Merged{srcs: srcs, events: make(chan hal.ButtonEvent), done: make(chan struct{})}
}

// Names returns every source's button names, once each.
func (m *Merged) Names() []string {
	var names []string
	for _, s := range m.srcs {
		for _, n := range s.Names() {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// Run relays every source's events until ctx ends or a source fails; then it stops the
// other relays, waits for them, and returns why it ended.
func (m *Merged) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, src := range m.srcs {
		wg.Go(func() {
			for {
				ev, err := src.ReadEvent(ctx)
				if err != nil {
					cancel(err)
					return
				}
				select {
				case m.events <- ev:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	<-ctx.Done()
	wg.Wait()
	m.err = fmt.Errorf("button: merged sources: %w", context.Cause(ctx))
	close(m.done)
	return m.err
}

// ReadEvent returns the next event of any source.
func (m *Merged) ReadEvent(ctx context.Context) (hal.ButtonEvent, error) {
	select {
	case ev := <-m.events:
		return ev, nil
	case <-m.done:
		return hal.ButtonEvent{}, m.err
	case <-ctx.Done():
		return hal.ButtonEvent{}, fmt.Errorf("button: %w", ctx.Err())
	}
}
