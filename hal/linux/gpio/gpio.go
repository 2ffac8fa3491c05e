// Package gpio reads the board's buttons and drives its mute LED through the Linux GPIO
// character device (/dev/gpiochipN, periph.io's gpioioctl driver; not the deprecated sysfs
// interface). Buttons are watched for both edges; the raw, bouncy edges go through
// hal/button's debouncer (20 ms window, long press after 1 s, repeats for the volume keys).
//
// Which line is which comes from a PinMap, usually read from a YAML file by ParseConfig.
// A line is named by its chip ("gpiochip0" or the chip's label, "pinctrl-bcm2711") and
// its offset, or by its line name alone ("GPIO17" on a Raspberry Pi), which is searched on
// every chip and survives the Pi 5 moving the header from gpiochip4 to gpiochip0.
//
// # Raspberry Pi default (DefaultPinMap)
//
// Buttons wire from a header pin to ground, with the SoC's pull-ups, so they are active
// low; the LED goes through a resistor (330 Ω) from its pin to ground, active high. The
// pins avoid I2C (BCM 2, 3), SPI0 (7-11), the UART (14, 15), and I2S (18-21), which audio
// HATs use:
//
//	button / LED   BCM      header pin   wiring
//	mic            GPIO17   11           to GND (pin 9), pull-up, active low
//	camera         GPIO27   13           to GND (pin 14), pull-up, active low
//	speaker        GPIO22   15           to GND (pin 14), pull-up, active low
//	volume-up      GPIO23   16           to GND (pin 20), pull-up, active low
//	volume-down    GPIO24   18           to GND (pin 20), pull-up, active low
//	LED            GPIO25   22           330 Ω to GND (pin 25), active high
//
// GPIO17 is also the user button of the ReSpeaker 2-Mics Pi HAT. docs/HARDWARE.md has the
// same table and the YAML form.
//
// # Testing
//
// The pin logic runs against periph's gpiotest fakes behind the Chip seam. The character
// device path itself (chips.go, a thin adapter) is not exercised by any test: Debian's
// kernels have neither gpio-sim nor gpio-mockup, so neither this machine nor the VM lab
// has a GPIO chip to open.
package gpio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
	"periph.io/x/conn/v3/gpio"

	"roombox/hal"
	"roombox/hal/button"
)

// ErrNoGPIO is returned by Open on a machine without GPIO chips: the buttons and LED are
// absent, not broken.
var ErrNoGPIO = errors.New("gpio: no GPIO chips")

// Pin places one button or LED on a GPIO line.
type Pin struct {
	// Chip is the chip's name ("gpiochip0") or label ("pinctrl-bcm2711"); empty means
	// any chip with a line named Line.
	Chip string `yaml:"chip,omitempty"`
	// Line is the line's name ("GPIO17") or its offset on Chip ("17").
	Line string `yaml:"line"`
	// ActiveLow inverts the level: a button pressed or an LED lit reads low.
	ActiveLow bool `yaml:"active_low,omitempty"`
	// Pull is the input bias of a button: "up", "down", "none", or empty to leave it.
	Pull string `yaml:"pull,omitempty"`
}

// PinMap says where the buttons and the LED are.
type PinMap struct {
	Buttons map[string]Pin `yaml:"buttons"` // keyed by hal.ButtonMic ... hal.ButtonVolumeDown
	LED     *Pin           `yaml:"led,omitempty"`
}

// DefaultPinMap is the Raspberry Pi layout of the package documentation.
func DefaultPinMap() PinMap {
	button := func(line string) Pin { return Pin{Line: line, ActiveLow: true, Pull: "up"} }
	return PinMap{
		Buttons: map[string]Pin{
			hal.ButtonMic:        button("GPIO17"),
			hal.ButtonCamera:     button("GPIO27"),
			hal.ButtonSpeaker:    button("GPIO22"),
			hal.ButtonVolumeUp:   button("GPIO23"),
			hal.ButtonVolumeDown: button("GPIO24"),
		},
		LED: &Pin{Line: "GPIO25"},
	}
}

var buttonNames = []string{hal.ButtonMic, hal.ButtonCamera, hal.ButtonSpeaker, hal.ButtonVolumeUp, hal.ButtonVolumeDown}

var pulls = map[string]gpio.Pull{"": gpio.PullNoChange, "up": gpio.PullUp, "down": gpio.PullDown, "none": gpio.Float}

// ParseConfig reads a PinMap from YAML and checks it; unknown keys are errors.
func ParseConfig(data []byte) (PinMap, error) {
	var m PinMap
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return PinMap{}, fmt.Errorf("gpio: config: %w", err)
	}
	if err := m.Check(); err != nil {
		return PinMap{}, err
	}
	return m, nil
}

// Check reports the first mistake in m, naming its key.
func (m PinMap) Check() error {
	for _, name := range slices.Sorted(maps.Keys(m.Buttons)) {
		if !slices.Contains(buttonNames, name) {
			return fmt.Errorf("gpio: config: buttons.%s: unknown button (want one of %s)", name, strings.Join(buttonNames, ", "))
		}
		if err := m.Buttons[name].check(); err != nil {
			return fmt.Errorf("gpio: config: buttons.%s%w", name, err)
		}
	}
	if m.LED != nil {
		if err := m.LED.check(); err != nil {
			return fmt.Errorf("gpio: config: led%w", err)
		}
		if m.LED.Pull != "" {
			return errors.New("gpio: config: led.pull: an output has no pull")
		}
	}
	return nil
}

// check's errors start with the sub-key, to follow the pin's own key.
func (p Pin) check() error {
	if _, ok := pulls[p.Pull]; !ok {
		return fmt.Errorf(".pull: %q is not up, down or none", p.Pull)
	}
	if p.Line == "" {
		return errors.New(".line: missing")
	}
	if _, err := strconv.Atoi(p.Line); err == nil && p.Chip == "" {
		return fmt.Errorf(".chip: line offset %s needs a chip (or use the line's name)", p.Line)
	}
	return nil
}

// Chip is one GPIO controller as the pin map sees it: chips.go makes them from periph's
// gpioioctl.Chips, tests from gpiotest pins.
type Chip struct {
	Name, Label string
	Lines       []gpio.PinIO // indexed by offset
}

// edgePoll bounds how long a stopped watcher can stay in WaitForEdge when Halt came just
// before it started waiting (gpioioctl's Halt only interrupts a wait already begun).
const edgePoll = 250 * time.Millisecond

// Board is the opened buttons and LED.
type Board struct {
	// Buttons are the debounced buttons; nil when the map has none.
	Buttons hal.Buttons
	// LED is the mute LED; nil when the map has none.
	LED hal.LED

	cancel context.CancelFunc
	pins   []gpio.PinIO
	wg     sync.WaitGroup
	once   sync.Once
}

// Open claims the lines of m on the system's GPIO chips and starts watching the buttons
// until ctx ends or Close. It returns an error matching ErrNoGPIO when there are no chips.
func Open(ctx context.Context, m PinMap, clock hal.Clock) (*Board, error) {
	chips, err := systemChips()
	if err != nil {
		return nil, err
	}
	return open(ctx, m, clock, chips)
}

func open(ctx context.Context, m PinMap, clock hal.Clock, chips []Chip) (*Board, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	b := &Board{}
	ok := false
	defer func() {
		if !ok {
			b.release()
		}
	}()
	used := map[string]string{} // "chip/offset" -> the key that claimed it
	claim := func(key string, p Pin) (gpio.PinIO, error) {
		pin, at, err := resolve(chips, p)
		if err != nil {
			return nil, fmt.Errorf("gpio: %s: %w", key, err)
		}
		if other, dup := used[at]; dup {
			return nil, fmt.Errorf("gpio: %s: line %s is also %s", key, at, other)
		}
		used[at] = key
		b.pins = append(b.pins, pin)
		return pin, nil
	}

	var watch []watcher
	for _, name := range buttonNames {
		p, present := m.Buttons[name]
		if !present {
			continue
		}
		key := "buttons." + name
		pin, err := claim(key, p)
		if err != nil {
			return nil, err
		}
		if err := pin.In(pulls[p.Pull], gpio.BothEdges); err != nil {
			return nil, fmt.Errorf("gpio: %s: %s: input: %w", key, p.Line, err)
		}
		watch = append(watch, watcher{name: name, pin: pin, activeLow: p.ActiveLow})
	}
	if m.LED != nil {
		pin, err := claim("led", *m.LED)
		if err != nil {
			return nil, err
		}
		led := &led{pin: pin, activeLow: m.LED.ActiveLow}
		if err := led.Set(false); err != nil {
			return nil, fmt.Errorf("gpio: led: %w", err)
		}
		b.LED = led
	}

	ctx, b.cancel = context.WithCancel(ctx)
	if len(watch) > 0 {
		raw := &rawButtons{events: make(chan hal.ButtonEvent)}
		var repeat []string
		for _, w := range watch {
			raw.names = append(raw.names, w.name)
			if w.name == hal.ButtonVolumeUp || w.name == hal.ButtonVolumeDown {
				repeat = append(repeat, w.name)
			}
		}
		clean, err := button.New(raw, clock, button.Config{Repeat: repeat})
		if err != nil {
			b.cancel()
			return nil, fmt.Errorf("gpio: %w", err)
		}
		for _, w := range watch {
			b.wg.Go(func() { w.run(ctx, clock, raw.events) })
		}
		b.wg.Go(func() { clean.Run(ctx) })
		b.Buttons = clean
	}
	ok = true
	return b, nil
}

// resolve finds p's line and names it "chip/offset" for duplicate checks.
func resolve(chips []Chip, p Pin) (gpio.PinIO, string, error) {
	offset, numeric := strconv.Atoi(p.Line)
	var names []string
	for _, c := range chips {
		names = append(names, fmt.Sprintf("%s [%s]", c.Name, c.Label))
		if p.Chip != "" && p.Chip != c.Name && p.Chip != c.Label {
			continue
		}
		if numeric == nil {
			if offset < 0 || offset >= len(c.Lines) {
				return nil, "", fmt.Errorf("line %d: chip %s has lines 0-%d", offset, c.Name, len(c.Lines)-1)
			}
			return c.Lines[offset], fmt.Sprintf("%s/%d", c.Name, offset), nil
		}
		for i, l := range c.Lines {
			if l.Name() == p.Line {
				return l, fmt.Sprintf("%s/%d", c.Name, i), nil
			}
		}
		if p.Chip != "" {
			return nil, "", fmt.Errorf("line %q: no line of that name on chip %s", p.Line, c.Name)
		}
	}
	if p.Chip != "" {
		return nil, "", fmt.Errorf("chip %q: no such chip (chips: %s)", p.Chip, strings.Join(names, ", "))
	}
	return nil, "", fmt.Errorf("line %q: no line of that name on any chip (chips: %s)", p.Line, strings.Join(names, ", "))
}

// Close stops the watchers and the debouncer, waits for them and releases the lines.
func (b *Board) Close() error {
	b.once.Do(func() {
		b.cancel()
		for _, p := range b.pins {
			p.Halt() // interrupts a WaitForEdge in progress; edgePoll covers the rest
		}
		b.wg.Wait()
		b.release()
	})
	return nil
}

// release gives the lines back to the kernel (gpioioctl lines have Close; fakes do not).
func (b *Board) release() {
	for _, p := range b.pins {
		if c, ok := p.(interface{ Close() }); ok {
			c.Close()
		}
	}
}

// watcher turns one line's edges into raw button edges.
type watcher struct {
	name      string
	pin       gpio.PinIO
	activeLow bool
}

func (w watcher) run(ctx context.Context, clock hal.Clock, out chan<- hal.ButtonEvent) {
	for {
		edge := w.pin.WaitForEdge(edgePoll)
		if ctx.Err() != nil {
			return
		}
		if !edge {
			continue
		}
		// WaitForEdge does not say which edge: the level read now is the truth, and a
		// bounce that reads the same level twice is no edge to the debouncer.
		pressed := bool(w.pin.Read()) != w.activeLow
		kind := hal.Release
		if pressed {
			kind = hal.Press
		}
		select {
		case out <- hal.ButtonEvent{Button: w.name, Kind: kind, Pressed: pressed, Time: clock.Now()}:
		case <-ctx.Done():
			return
		}
	}
}

// rawButtons is the watchers' edges as a hal.Buttons, for the debouncer.
type rawButtons struct {
	names  []string
	events chan hal.ButtonEvent
}

func (r *rawButtons) Names() []string { return slices.Clone(r.names) }

func (r *rawButtons) ReadEvent(ctx context.Context) (hal.ButtonEvent, error) {
	select {
	case ev := <-r.events:
		return ev, nil
	case <-ctx.Done():
		return hal.ButtonEvent{}, fmt.Errorf("gpio: %w", ctx.Err())
	}
}

// led is the mute LED on an output line.
type led struct {
	pin       gpio.PinOut
	activeLow bool
}

func (l *led) Set(on bool) error {
	if err := l.pin.Out(gpio.Level(on != l.activeLow)); err != nil {
		return fmt.Errorf("gpio: led: %w", err)
	}
	return nil
}
