//go:build !linux

package evdev

import (
	"errors"
	"fmt"
)

// linuxSystem has no devices off Linux.
type linuxSystem struct{}

func (linuxSystem) Paths() ([]string, error) { return nil, nil }

func (linuxSystem) Open(path string) (device, error) {
	return nil, fmt.Errorf("evdev: %s: %w", path, errors.ErrUnsupported)
}
