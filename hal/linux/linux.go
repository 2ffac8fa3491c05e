// Package linux assembles a hal.Board from the hardware a Linux board has: it attaches each
// part that is there, skips each that is not, and reports which is which, in the spirit of
// periph's driver.Impl.Init() (bool, error): a missing camera or sensor is "absent" and a
// broken one "failed", and neither stops the device.
//
// The camera (hal/linux/v4l2), the model and the temperature (hal/linux/board) are built in;
// audio, GPIO buttons and LED, and evdev keys come from their own packages as Parts.
package linux

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"roombox/hal"
	"roombox/hal/linux/board"
	"roombox/hal/linux/v4l2"
)

// ErrAbsent is what a Part's Attach wraps to say its hardware is not there, with the reason.
var ErrAbsent = errors.New("linux: absent")

// Part is one piece of hardware NewBoard attaches. Attach opens it and sets its fields of b
// (Mic, Speaker, Buttons, LED…); it returns true when the part is present and working, false
// with nil or an ErrAbsent-wrapping error when the hardware is not there, and false with
// another error when it is there but failed. ctx lives as long as the board: a part holding
// something Board.Close does not close (GPIO lines, input devices) lets go when ctx ends.
type Part interface {
	Name() string
	Attach(ctx context.Context, b *hal.Board) (bool, error)
}

// Describer is a Part that can say what it found; the Report shows it for a present part.
type Describer interface{ Describe() string }

// NewPart makes a Part of a name and an attach function.
func NewPart(name string, attach func(ctx context.Context, b *hal.Board) (bool, error)) Part {
	return funcPart{name, attach}
}

type funcPart struct {
	name   string
	attach func(context.Context, *hal.Board) (bool, error)
}

func (p funcPart) Name() string { return p.name }

func (p funcPart) Attach(ctx context.Context, b *hal.Board) (bool, error) { return p.attach(ctx, b) }

// builtin is a part of this package: present when attach returns no error, described by
// what attach returned.
type builtin struct {
	name   string
	attach func(context.Context, *hal.Board) (string, error)
	detail string
}

func (p *builtin) Name() string     { return p.name }
func (p *builtin) Describe() string { return p.detail }

func (p *builtin) Attach(ctx context.Context, b *hal.Board) (bool, error) {
	d, err := p.attach(ctx, b)
	p.detail = d
	return err == nil, err
}

// State is a part's outcome.
type State string

// States of a part.
const (
	Present State = "present"
	Absent  State = "absent"
	Failed  State = "failed"
)

// PartStatus is one line of a Report.
type PartStatus struct {
	Name   string
	State  State
	Detail string // what was found, or why it is absent or failed
}

// Report says what NewBoard found, part by part, for the page and the log.
type Report []PartStatus

func (r Report) String() string {
	var b strings.Builder
	for i, p := range r {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", p.Name, p.State)
		if p.Detail != "" {
			fmt.Fprintf(&b, " (%s)", p.Detail)
		}
	}
	return b.String()
}

// Config says what to look for; zero fields take the defaults.
type Config struct {
	// Camera selects and sets up the camera (Device empty: the first capture node with a
	// usable mode, picked again after an unplug); its Clock also paces reopening.
	Camera v4l2.Config
	// NoCamera leaves the camera out, reported absent.
	NoCamera bool
	// OnCameraEvent, if set, hears each loss and reopen of the camera; they are logged either way.
	OnCameraEvent func(v4l2.Event)
	// Root is the filesystem board facts are read from; default os.DirFS("/").
	Root fs.FS
	// Parts are attached after the built-in ones, in order.
	Parts []Part
	// Logger logs camera events; default slog.Default().
	Logger *slog.Logger
}

// NewBoard attaches every part it can. It fails only when ctx ends; every part's outcome is
// in the Report. The board's Name is its model, or "linux" when the model is unknown.
func NewBoard(ctx context.Context, cfg Config) (*hal.Board, Report, error) {
	if cfg.Root == nil {
		cfg.Root = os.DirFS("/")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &hal.Board{Name: "linux"}
	parts := append([]Part{
		&builtin{name: "model", attach: func(context.Context, *hal.Board) (string, error) {
			m, err := board.Model(cfg.Root)
			if err == nil {
				b.Name = m
			}
			return m, err
		}},
		&builtin{name: "thermal", attach: func(context.Context, *hal.Board) (string, error) {
			th, err := board.FindThermal(cfg.Root)
			if err != nil {
				return "", err
			}
			b.Thermal = th
			c, _ := th.Celsius()
			return fmt.Sprintf("%s, %.1f °C", th.Zone(), c), nil
		}},
		&builtin{name: "camera", attach: func(ctx context.Context, b *hal.Board) (string, error) {
			if cfg.NoCamera {
				return "", fmt.Errorf("%w: turned off", ErrAbsent)
			}
			return attachCamera(ctx, b, cfg)
		}},
	}, cfg.Parts...)

	var rep Report
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			b.Close()
			return nil, rep, fmt.Errorf("linux: attaching %s: %w", p.Name(), err)
		}
		ok, err := p.Attach(ctx, b)
		rep = append(rep, status(p, ok, err))
	}
	return b, rep, nil
}

func status(p Part, ok bool, err error) PartStatus {
	s := PartStatus{Name: p.Name(), State: Present}
	switch {
	case ok:
		if d, isD := p.(Describer); isD {
			s.Detail = d.Describe()
		}
	case err == nil:
		s.State = Absent
	case errors.Is(err, ErrAbsent), errors.Is(err, board.ErrAbsent), errors.Is(err, v4l2.ErrNoDevice):
		s.State, s.Detail = Absent, err.Error()
	default:
		s.State, s.Detail = Failed, err.Error()
	}
	return s
}

// attachCamera opens the camera once now (so an absent one is reported absent and a
// present one with its mode), then wraps it in a v4l2.Reopener that rides out unplugs.
func attachCamera(ctx context.Context, b *hal.Board, cfg Config) (string, error) {
	cam, err := v4l2.Open(ctx, cfg.Camera)
	if err != nil {
		return "", err
	}
	log := cfg.Logger
	b.Camera = v4l2.NewReopener(cam, func(ctx context.Context, want hal.VideoFormat) (hal.Camera, error) {
		c := cfg.Camera
		c.Width, c.Height, c.FPS = want.Width, want.Height, want.FPS
		return v4l2.Open(ctx, c)
	}, v4l2.ReopenConfig{Clock: cfg.Camera.Clock, OnEvent: func(e v4l2.Event) {
		switch e.Kind {
		case v4l2.Lost:
			log.Warn("camera lost", "err", e.Err)
		case v4l2.OpenFailed:
			log.Info("camera reopen failed", "attempt", e.Attempt, "retry_in", e.Backoff, "err", e.Err)
		case v4l2.Reopened:
			log.Info("camera reopened", "attempt", e.Attempt)
		}
		if cfg.OnCameraEvent != nil {
			cfg.OnCameraEvent(e)
		}
	}})
	n := cam.Node()
	return fmt.Sprintf("%s, %s %q, %v", cam.Path(), n.Driver, n.Card, cam.Mode()), nil
}
