package evdev

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"roombox/hal"
	"roombox/hal/linux/evdev/uinput"
)

// Report is what CheckUinput saw.
type Report struct {
	Device  Info              // the event node the virtual device appeared as
	Events  []hal.ButtonEvent // read back: mic Press, mic Release
	Latency time.Duration     // from writing the press to reading it back
}

// CheckUinput puts a real KEY_MICMUTE through the kernel: it creates a virtual keyboard with
// uinput, waits for this package to discover it among /dev/input/event*, types a press and
// a release, and reads both back as button edges; then it destroys the device and waits
// for the unplug to be noticed. It needs /dev/uinput (module uinput) and root; the error
// wraps fs.ErrNotExist when /dev/uinput is absent.
func CheckUinput(ctx context.Context) (Report, error) {
	name := fmt.Sprintf("roombox-check-%d", os.Getpid())
	u, err := uinput.Create(name, KeyMicMute)
	if err != nil {
		return Report{}, fmt.Errorf("evdev: check: %w", err)
	}
	destroyed := false
	defer func() {
		if !destroyed {
			u.Close()
		}
	}()
	b, err := Open(ctx, Config{Clock: hal.WallClock{}, Names: []string{name}})
	if err != nil {
		return Report{}, err
	}
	defer b.Close()
	infos, err := b.WaitDevices(ctx, func(i []Info) bool { return len(i) > 0 })
	if err != nil {
		return Report{}, fmt.Errorf("evdev: check: %s never appeared: %w", name, err)
	}
	rep := Report{Device: infos[0]}
	start := time.Now()
	for _, pressed := range []bool{true, false} {
		if err := u.Key(KeyMicMute, pressed); err != nil {
			return rep, err
		}
		ev, err := b.ReadEvent(ctx)
		if err != nil {
			return rep, fmt.Errorf("evdev: check: reading back: %w", err)
		}
		if pressed {
			rep.Latency = time.Since(start)
		}
		rep.Events = append(rep.Events, ev)
		if ev.Button != hal.ButtonMic || ev.Pressed != pressed {
			return rep, fmt.Errorf("evdev: check: typed KEY_MICMUTE pressed=%t, read %s %s", pressed, ev.Button, ev.Kind)
		}
	}
	destroyed = true
	if err := u.Close(); err != nil {
		return rep, err
	}
	if _, err := b.WaitDevices(ctx, func(i []Info) bool { return !slices.Contains(i, rep.Device) }); err != nil {
		return rep, fmt.Errorf("evdev: check: unplug of %s not noticed: %w", rep.Device.Path, err)
	}
	return rep, nil
}
