package evdev

import (
	"bytes"
	"os"
	"path/filepath"
	"unsafe"

	"roombox/hal/linux/evdev/internal/input"
)

// linuxSystem is /dev/input. A character device opened by os.OpenFile joins the runtime
// poller (evdev supports poll), so SetReadDeadline interrupts a blocked Read.
type linuxSystem struct{}

func (linuxSystem) Paths() ([]string, error) { return filepath.Glob("/dev/input/event*") }

func (linuxSystem) Open(path string) (device, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return evdevFile{f}, nil
}

type evdevFile struct{ *os.File }

func (f evdevFile) Name() (string, error) {
	var name [256]byte
	if err := f.ioctl(input.EVIOCGNAME(len(name)), unsafe.Pointer(&name)); err != nil {
		return "", err
	}
	n, _, _ := bytes.Cut(name[:], []byte{0})
	return string(n), nil
}

func (f evdevFile) KeyBits(bits *[input.KeyBitmapBytes]byte) error {
	return f.ioctl(input.EVIOCGBIT(input.EvKey, len(bits)), unsafe.Pointer(bits))
}

func (f evdevFile) KeyState(bits *[input.KeyBitmapBytes]byte) error {
	return f.ioctl(input.EVIOCGKEY(len(bits)), unsafe.Pointer(bits))
}

func (f evdevFile) Grab() error { return input.IoctlInt(f.File, input.EVIOCGRAB, 1) }

func (f evdevFile) ioctl(req uint, arg unsafe.Pointer) error { return input.Ioctl(f.File, req, arg) }
