package linux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"roombox/hal"
	"roombox/hal/button"
	"roombox/hal/linux/evdev"
	"roombox/hal/linux/gpio"
	"roombox/hal/linux/m2m"
)

// EncoderPart finds the V4L2 M2M H.264 encoder (a Raspberry Pi's bcm2835-codec) with f (the
// zero Finder scans /dev/video*) and offers it as the board's encoder; absent on boards
// without one (a Pi 5, a PC).
func EncoderPart(f m2m.Finder) Part {
	return NewPart("encoder", func(ctx context.Context, b *hal.Board) (bool, error) {
		info, err := f.Find(ctx)
		if errors.Is(err, m2m.ErrNotFound) {
			return false, fmt.Errorf("%w: %w", ErrAbsent, err)
		}
		if err != nil {
			return false, err
		}
		b.Encoder = func(cfg hal.EncoderConfig) (hal.VideoEncoder, error) { return m2m.NewEncoder(info, cfg) }
		b.EncoderName = fmt.Sprintf("%s %s", info.Card, info.Path)
		b.EncoderBudget = info.Budget()
		return true, nil
	})
}

// Buttons collects the board's button sources (GPIO, input devices) and gives the board
// one hal.Buttons: a single source as it is, several merged. Its parts must be attached
// before Part.
type Buttons struct {
	Clock hal.Clock
	Log   *slog.Logger

	srcs  []hal.Buttons
	names []string // which part gave each source, for the report
}

// GPIOPart claims the pin map's lines: debounced buttons and the mute LED. Absent on a
// machine without GPIO chips.
func (s *Buttons) GPIOPart(m gpio.PinMap) Part {
	return NewPart("gpio", func(ctx context.Context, b *hal.Board) (bool, error) {
		g, err := gpio.Open(ctx, m, s.Clock)
		if errors.Is(err, gpio.ErrNoGPIO) {
			return false, fmt.Errorf("%w: %w", ErrAbsent, err)
		}
		if err != nil {
			return false, err
		}
		if g.LED != nil {
			b.LED = g.LED
		}
		if g.Buttons != nil {
			s.srcs, s.names = append(s.srcs, g.Buttons), append(s.names, "gpio")
		}
		b.Others = append(b.Others, g)
		return true, nil
	})
}

// EvdevPart reads mute and volume keys from input devices (gpio-keys, USB speakerphones),
// found now or plugged in later, debounced like the GPIO buttons.
func (s *Buttons) EvdevPart(cfg evdev.Config) Part {
	return NewPart("input", func(ctx context.Context, b *hal.Board) (bool, error) {
		cfg.Clock, cfg.Log = s.Clock, s.Log
		raw, err := evdev.Open(ctx, cfg)
		if err != nil {
			return false, err
		}
		clean, err := button.New(raw, s.Clock, button.Config{Repeat: []string{hal.ButtonVolumeUp, hal.ButtonVolumeDown}})
		if err != nil {
			raw.Close()
			return false, err
		}
		r := runner(ctx, clean.Run)
		b.Others = append(b.Others, raw, r)
		s.srcs, s.names = append(s.srcs, clean), append(s.names, "input")
		return true, nil
	})
}

// Part sets the board's buttons from the sources found; absent when there are none.
func (s *Buttons) Part() Part {
	return NewPart("buttons", func(ctx context.Context, b *hal.Board) (bool, error) {
		switch len(s.srcs) {
		case 0:
			return false, fmt.Errorf("%w: no GPIO buttons or input devices", ErrAbsent)
		case 1:
			b.Buttons = s.srcs[0]
		default:
			m := button.Merge(s.srcs...)
			b.Buttons = m
			b.Others = append(b.Others, runner(ctx, m.Run))
		}
		s.Log.Info("buttons", "sources", strings.Join(s.names, "+"), "names", b.Buttons.Names())
		return true, nil
	})
}

// runner runs run until ctx ends or its Close; Close waits for it.
func runner(ctx context.Context, run func(context.Context) error) *runCloser {
	ctx, cancel := context.WithCancel(ctx)
	r := &runCloser{cancel: cancel}
	r.wg.Go(func() { _ = run(ctx) })
	return r
}

type runCloser struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (r *runCloser) Close() error {
	r.cancel()
	r.wg.Wait()
	return nil
}
