package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"roombox/hal"
)

// ErrUnknownButton is returned by Press for a name the board does not have.
var ErrUnknownButton = errors.New("sim: unknown button")

// buttonQueue is how many edges may wait for a reader, like the kernel's input queue.
const buttonQueue = 16

// Buttons are virtual buttons driven by Press.
type Buttons struct {
	clock  Clock
	names  []string
	events chan hal.ButtonEvent
}

func newButtons(clock Clock) *Buttons {
	return &Buttons{
		clock:  clock,
		names:  []string{hal.ButtonMic, hal.ButtonCamera, hal.ButtonSpeaker, hal.ButtonVolumeUp, hal.ButtonVolumeDown},
		events: make(chan hal.ButtonEvent, buttonQueue),
	}
}

// Names returns the board's button names.
func (b *Buttons) Names() []string { return slices.Clone(b.names) }

// Press queues a press edge and then a release edge of the named button. It blocks while
// the queue is full, until ctx ends; if ctx ends between the two edges, the release is not
// queued.
func (b *Buttons) Press(ctx context.Context, name string) error {
	if !slices.Contains(b.names, name) {
		return fmt.Errorf("%w %q (buttons: %s)", ErrUnknownButton, name, strings.Join(b.names, ", "))
	}
	for _, kind := range []hal.ButtonKind{hal.Press, hal.Release} {
		ev := hal.ButtonEvent{Button: name, Kind: kind, Pressed: kind == hal.Press, Time: b.clock.Now()}
		select {
		case b.events <- ev:
		case <-ctx.Done():
			return fmt.Errorf("sim: press %s: %w", name, ctx.Err())
		}
	}
	return nil
}

// ReadEvent returns the next queued edge, blocking until there is one or ctx ends.
func (b *Buttons) ReadEvent(ctx context.Context) (hal.ButtonEvent, error) {
	select {
	case ev := <-b.events:
		return ev, nil
	case <-ctx.Done():
		return hal.ButtonEvent{}, fmt.Errorf("sim: buttons: %w", ctx.Err())
	}
}

// LED is the virtual mute LED.
type LED struct {
	on atomic.Bool
}

// Set switches the LED.
func (l *LED) Set(on bool) error {
	l.on.Store(on)
	return nil
}

// On reports whether the LED is lit.
func (l *LED) On() bool { return l.on.Load() }
