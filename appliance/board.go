package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"roombox/hal/sim"
	"roombox/media"

	"roombox/hal"
	"roombox/hal/linux"
	"roombox/hal/linux/alsa"
	"roombox/hal/linux/evdev"
	"roombox/hal/linux/gpio"
	"roombox/hal/linux/m2m"
	"roombox/hal/linux/v4l2"
)

// openLinuxBoard attaches the real hardware that is there: camera, ALSA "default" mic and
// speaker, hardware encoder, GPIO
// buttons and LED (pinsFile, or the documented Raspberry Pi pin map), input-device keys. What is absent
// is skipped, not fatal: the report says which.
func openLinuxBoard(ctx context.Context, pinsFile string, video VideoOptions, log *slog.Logger) (*hal.Board, error) {
	pins := gpio.DefaultPinMap()
	if pinsFile != "" {
		data, err := os.ReadFile(pinsFile)
		if err != nil {
			return nil, fmt.Errorf("appliance: pin map: %w", err)
		}
		if pins, err = gpio.ParseConfig(data); err != nil {
			return nil, fmt.Errorf("appliance: pin map %s: %w", pinsFile, err)
		}
	}
	clock := hal.WallClock{}
	mc := video.media()
	buttons := &linux.Buttons{Clock: clock, Log: log}
	b, rep, err := linux.NewBoard(ctx, linux.Config{
		Camera: v4l2.Config{Width: mc.Width, Height: mc.Height, FPS: mc.FPS, Clock: clock},
		Logger: log,
		Parts: []linux.Part{
			alsa.MicPart(alsa.Config{Clock: clock}),
			alsa.SpeakerPart(alsa.Config{Clock: clock}),
			linux.EncoderPart(m2m.Finder{}),
			buttons.GPIOPart(pins),
			buttons.EvdevPart(evdev.Config{}),
			buttons.Part(),
		},
	})
	if err != nil {
		return nil, err
	}
	for _, p := range rep {
		log.Info("board part", "part", p.Name, "state", p.State, "detail", p.Detail)
	}
	return b, nil
}

// simConfig is the simulated board rendering the camera mc asks for.
func simConfig(mc media.Config) sim.Config {
	return sim.Config{Width: mc.Width, Height: mc.Height, FPS: mc.FPS}
}
