package gpio

import (
	"fmt"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"
)

var (
	initOnce sync.Once
	initErr  error
)

// systemChips is the character-device side: periph's gpioioctl driver opens every
// /dev/gpiochipN when the driver registry initialises (once per process).
func systemChips() ([]Chip, error) {
	initOnce.Do(func() { _, initErr = driverreg.Init() })
	if initErr != nil {
		return nil, fmt.Errorf("gpio: %w", initErr)
	}
	if len(gpioioctl.Chips) == 0 {
		return nil, ErrNoGPIO
	}
	chips := make([]Chip, 0, len(gpioioctl.Chips))
	for _, c := range gpioioctl.Chips {
		ch := Chip{Name: c.Name(), Label: c.Label()}
		for _, l := range c.Lines() {
			ch.Lines = append(ch.Lines, gpio.PinIO(l))
		}
		chips = append(chips, ch)
	}
	return chips, nil
}
