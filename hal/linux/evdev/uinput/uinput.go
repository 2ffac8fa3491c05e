//go:build linux

// Package uinput creates a virtual input device through /dev/uinput (kernel module uinput)
// and types keys on it. The VM lab and evdev.CheckUinput use it to put a real KEY_MICMUTE
// through the kernel's input core, where the evdev reader picks it up like any keyboard's.
package uinput

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"roombox/hal/linux/evdev/internal/input"
)

// Path is the uinput control device.
const Path = "/dev/uinput"

// Device is a virtual keyboard with a fixed set of keys.
type Device struct {
	f   *os.File
	buf [2 * input.Size]byte // a key event and its SYN_REPORT
}

// Create makes a virtual keyboard named name (at most 79 bytes) that has keys. The device
// node appears under /dev/input once udev or devtmpfs has caught up; the caller finds it
// by name.
func Create(name string, keys ...uint16) (*Device, error) {
	if len(name) == 0 || len(name) >= 80 {
		return nil, fmt.Errorf("uinput: name %q must have 1 to 79 bytes", name)
	}
	if len(keys) == 0 {
		return nil, errors.New("uinput: no keys")
	}
	f, err := os.OpenFile(Path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("uinput: %w", err)
	}
	setup := input.UinputSetup{Bustype: input.BusVirtual, Vendor: 0x1209, Product: 0x0001, Version: 1}
	copy(setup.Name[:], name)
	err = func() error {
		if err := input.IoctlInt(f, input.UI_SET_EVBIT, input.EvKey); err != nil {
			return fmt.Errorf("UI_SET_EVBIT: %w", err)
		}
		for _, k := range keys {
			if err := input.IoctlInt(f, input.UI_SET_KEYBIT, int(k)); err != nil {
				return fmt.Errorf("UI_SET_KEYBIT %d: %w", k, err)
			}
		}
		if err := input.Ioctl(f, input.UI_DEV_SETUP, unsafe.Pointer(&setup)); err != nil {
			return fmt.Errorf("UI_DEV_SETUP: %w", err)
		}
		if err := input.Ioctl(f, input.UI_DEV_CREATE, nil); err != nil {
			return fmt.Errorf("UI_DEV_CREATE: %w", err)
		}
		return nil
	}()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("uinput: %s: %w", name, err)
	}
	return &Device{f: f}, nil
}

// Key reports code going down (pressed) or up, followed by a SYN_REPORT, in one write.
func (d *Device) Key(code uint16, pressed bool) error {
	v := int32(input.ValueRelease)
	if pressed {
		v = input.ValuePress
	}
	input.Encode(d.buf[:], input.WordSize, input.Event{Type: input.EvKey, Code: code, Value: v})
	input.Encode(d.buf[input.Size:], input.WordSize, input.Event{Type: input.EvSyn, Code: input.SynReport})
	if _, err := d.f.Write(d.buf[:]); err != nil {
		return fmt.Errorf("uinput: key %d: %w", code, err)
	}
	return nil
}

// Close destroys the device (its readers see ENODEV) and closes the control file.
func (d *Device) Close() error {
	err := input.Ioctl(d.f, input.UI_DEV_DESTROY, nil)
	return errors.Join(err, d.f.Close())
}
