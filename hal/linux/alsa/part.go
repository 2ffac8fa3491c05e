package alsa

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"roombox/hal"
	"roombox/hal/linux"
)

// MicPart attaches the microphone to a linux board: present when cfg's device opens (it
// is then closed and the board gets a ReopeningMic, which rides out later unplugs), absent
// when there is no such device or no ALSA in this build, failed when it exists but will
// not open (busy, no 48 kHz).
func MicPart(cfg Config) linux.Part {
	return &part[*Mic]{name: "mic", cfg: cfg, open: OpenMic,
		set: func(b *hal.Board, cfg Config) { b.Mic = NewReopeningMic(cfg) }}
}

// SpeakerPart attaches the speaker to a linux board, as MicPart the microphone.
func SpeakerPart(cfg Config) linux.Part {
	return &part[*Speaker]{name: "speaker", cfg: cfg, open: OpenSpeaker,
		set: func(b *hal.Board, cfg Config) { b.Speaker = NewReopeningSpeaker(cfg) }}
}

type part[D interface {
	Params() Params
	Close() error
}] struct {
	name   string
	cfg    Config
	open   func(Config) (D, error)
	set    func(*hal.Board, Config)
	detail string
}

func (p *part[D]) Name() string     { return p.name }
func (p *part[D]) Describe() string { return p.detail }

func (p *part[D]) Attach(_ context.Context, b *hal.Board) (bool, error) {
	d, err := p.open(p.cfg)
	switch {
	case errors.Is(err, ErrNoALSA), errors.Is(err, syscall.ENOENT), errors.Is(err, ErrUnplugged):
		return false, fmt.Errorf("%w: %w", linux.ErrAbsent, err)
	case err != nil:
		return false, err
	}
	p.detail = fmt.Sprintf("%s: %s", p.cfg.withDefaults(true).Device, d.Params())
	if err := d.Close(); err != nil {
		return false, err
	}
	p.set(b, p.cfg)
	return true, nil
}
