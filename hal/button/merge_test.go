package button_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"roombox/hal"
	"roombox/hal/button"
)

// chanButtons is a raw source fed by the test.
type chanButtons struct {
	names []string
	ch    chan hal.ButtonEvent
	err   chan error
}

func newChan(names ...string) *chanButtons {
	return &chanButtons{names: names, ch: make(chan hal.ButtonEvent), err: make(chan error, 1)}
}

func (c *chanButtons) Names() []string { return c.names }

func (c *chanButtons) ReadEvent(ctx context.Context) (hal.ButtonEvent, error) {
	select {
	case ev := <-c.ch:
		return ev, nil
	case err := <-c.err:
		return hal.ButtonEvent{}, err
	case <-ctx.Done():
		return hal.ButtonEvent{}, ctx.Err()
	}
}

// Both sources' events come out of the merge; a failing source ends Run with its error,
// and every relay goroutine is gone after Run returns.
func TestMerge(t *testing.T) {
	defer goleak.VerifyNone(t)
	gpio, usb := newChan(hal.ButtonMic, hal.ButtonVolumeUp), newChan(hal.ButtonMic, hal.ButtonSpeaker)
	m := button.Merge(gpio, usb)
	if got := m.Names(); !slices.Equal(got, []string{hal.ButtonMic, hal.ButtonVolumeUp, hal.ButtonSpeaker}) {
		t.Fatalf("names %v", got)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, src := range []*chanButtons{gpio, usb, gpio} {
		want := hal.ButtonEvent{Button: src.names[len(src.names)-1], Kind: hal.Press, Pressed: true}
		src.ch <- want
		got, err := m.ReadEvent(ctx)
		if err != nil || got != want {
			t.Fatalf("ReadEvent = %+v, %v; want %+v", got, err, want)
		}
	}
	unplugged := errors.New("unplugged")
	usb.err <- unplugged
	if err := <-done; !errors.Is(err, unplugged) {
		t.Fatalf("Run = %v, want the source's error", err)
	}
	if _, err := m.ReadEvent(ctx); !errors.Is(err, unplugged) {
		t.Fatalf("ReadEvent after Run ended = %v", err)
	}
}
