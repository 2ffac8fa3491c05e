// Package sim is a simulated board, the default on a development machine: a test-pattern
// camera whose frames carry a machine-readable capture stamp, a tone microphone, a speaker
// sink that measures levels, virtual buttons and a virtual LED. Time comes from an injected
// Clock, so tests drive pacing with a FakeClock.
package sim

import (
	"fmt"
	"time"

	"roombox/hal"
	"roombox/hal/sim/acoustic"
)

// Config sets up the simulated board; zero fields take the defaults.
type Config struct {
	Width, Height int     // camera picture size, even; default 640x360
	FPS           int     // camera frame rate; default 30
	ToneHz        float64 // microphone tone; default 440
	// MicPCM, if set, is what the microphone hears instead of the tone: 48 kHz mono
	// samples played in a loop (LoadWAV reads them from a file).
	MicPCM        []int16
	Clock         Clock         // default hal.WallClock
	SpeakerRecord time.Duration // how much speaker audio to keep for Speaker.Recording; default none
	// Room, if set, is the room the board stands in: what the speaker plays comes back
	// into the microphone through it (echo, reverberation, loudspeaker distortion) over its
	// noise, mixed with the microphone's own sound. Default none: the microphone hears
	// only its own sound.
	Room *acoustic.Config
}

// Board is the simulated board with its parts' concrete types.
type Board struct {
	Camera  *Camera
	Mic     *Mic
	Speaker *Speaker
	Buttons *Buttons
	LED     *LED
	Thermal *Thermal
	Room    *acoustic.Room // nil without Config.Room
}

// New builds a simulated board. It fails only on an impossible configuration.
func New(cfg Config) (*Board, error) {
	if cfg.Width == 0 && cfg.Height == 0 {
		cfg.Width, cfg.Height = 640, 360
	}
	if cfg.FPS == 0 {
		cfg.FPS = 30
	}
	if cfg.ToneHz == 0 {
		cfg.ToneHz = 440
	}
	if cfg.Clock == nil {
		cfg.Clock = hal.WallClock{}
	}
	c := StampCell(cfg.Width)
	switch {
	case cfg.Width%2 != 0 || cfg.Height%2 != 0:
		return nil, fmt.Errorf("sim: picture %dx%d must have even sides", cfg.Width, cfg.Height)
	case cfg.Width < stampBits*c || cfg.Height < 12*c:
		return nil, fmt.Errorf("sim: picture %dx%d is too small (at least %dx%d)", cfg.Width, cfg.Height, stampBits*c, 12*c)
	case cfg.FPS < 0 || cfg.FPS > 1000:
		return nil, fmt.Errorf("sim: frame rate %d out of range", cfg.FPS)
	case cfg.ToneHz < 0 || cfg.ToneHz >= SampleRate/2:
		return nil, fmt.Errorf("sim: tone %g Hz out of range", cfg.ToneHz)
	case cfg.MicPCM != nil && len(cfg.MicPCM) == 0:
		return nil, fmt.Errorf("sim: the microphone's recording is empty")
	}
	b := &Board{
		Camera:  newCamera(hal.VideoFormat{Width: cfg.Width, Height: cfg.Height, FPS: cfg.FPS}, cfg.Clock),
		Mic:     newMic(cfg.ToneHz, cfg.MicPCM, cfg.Clock),
		Speaker: newSpeaker(cfg.SpeakerRecord, cfg.Clock),
		Buttons: newButtons(cfg.Clock),
		LED:     &LED{},
		Thermal: &Thermal{clock: cfg.Clock},
	}
	if cfg.Room != nil {
		room, err := acoustic.New(*cfg.Room)
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		path := &echoPath{room: room, epoch: cfg.Clock.Now()}
		b.Room, b.Mic.room, b.Speaker.room = room, path, path
	}
	return b, nil
}

// NewBoard builds a simulated board as a hal.Board named "sim"; its parts are the concrete
// types of this package (b.Camera.(*sim.Camera) and so on).
func NewBoard(cfg Config) (*hal.Board, error) {
	b, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return b.HAL(), nil
}

// HAL returns the board as a hal.Board named "sim".
func (b *Board) HAL() *hal.Board {
	return &hal.Board{
		Name:    "sim",
		Camera:  b.Camera,
		Mic:     b.Mic,
		Speaker: b.Speaker,
		Buttons: b.Buttons,
		LED:     b.LED,
		Thermal: b.Thermal,
	}
}
