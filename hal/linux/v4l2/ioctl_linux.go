package v4l2

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blackjack/webcam neither reports per-node device_caps nor reads back bytesperline, so
// these two queries are made directly on a second descriptor of the same node; a capture
// device's format is per device, not per open file, so G_FMT sees what webcam set.

type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	_            [3]uint32
}

type v4l2PixFormat struct {
	Width, Height, PixelFormat, Field, BytesPerLine, SizeImage uint32
	Colorspace, Priv, Flags, YCbCrEnc, Quantization, XferFunc  uint32
}

// v4l2Format is struct v4l2_format: the union holds pointers, so it is pointer-aligned
// (208 bytes on 64-bit, 204 on 32-bit ARM).
type v4l2Format struct {
	Type uint32
	Fmt  struct {
		_   [0]uintptr
		Pix v4l2PixFormat
		_   [200 - unsafe.Sizeof(v4l2PixFormat{})]byte
	}
}

const bufTypeVideoCapture = 1

func iowr(nr, size uintptr) uintptr { return 3<<30 | size<<16 | 'V'<<8 | nr }
func ior(nr, size uintptr) uintptr  { return 2<<30 | size<<16 | 'V'<<8 | nr }

var (
	vidiocQuerycap = ior(0, unsafe.Sizeof(v4l2Capability{}))
	vidiocGFmt     = iowr(4, unsafe.Sizeof(v4l2Format{}))
)

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func openNode(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("v4l2: %s: %w", path, err)
	}
	return fd, nil
}

func queryCap(fd int, path string) (Node, error) {
	var c v4l2Capability
	err := ioctl(fd, vidiocQuerycap, unsafe.Pointer(&c))
	runtime.KeepAlive(&c)
	if err != nil {
		return Node{}, fmt.Errorf("v4l2: %s: QUERYCAP: %w", path, err)
	}
	return Node{
		Path: path, Driver: cstr(c.Driver[:]), Card: cstr(c.Card[:]), BusInfo: cstr(c.BusInfo[:]),
		Capabilities: c.Capabilities, DeviceCaps: c.DeviceCaps,
	}, nil
}

func getFormat(fd int, path string) (layout, error) {
	f := v4l2Format{Type: bufTypeVideoCapture}
	err := ioctl(fd, vidiocGFmt, unsafe.Pointer(&f))
	runtime.KeepAlive(&f)
	if err != nil {
		return layout{}, fmt.Errorf("v4l2: %s: G_FMT: %w", path, err)
	}
	p := f.Fmt.Pix
	return layout{Format: PixelFormat(p.PixelFormat), Width: int(p.Width), Height: int(p.Height), Stride: int(p.BytesPerLine)}, nil
}

func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

type v4l2Queryctrl struct {
	ID, Type                       uint32
	Name                           [32]byte
	Min, Max, Step, Default, Flags int32
	_                              [2]uint32
}

type v4l2Control struct {
	ID    uint32
	Value int32
}

const ctrlFlagNextCtrl = 0x80000000

var (
	vidiocQueryctrl = iowr(36, unsafe.Sizeof(v4l2Queryctrl{}))
	vidiocSCtrl     = iowr(28, unsafe.Sizeof(v4l2Control{}))
)

// SetControl sets the control called name on the node at path to value; for a button
// control (vivid's "Disconnect", which simulates unplugging the device) any value presses it.
// blackjack/webcam lists only integer, boolean and menu controls, so this walks them itself.
func SetControl(path, name string, value int32) error {
	fd, err := openNode(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for id := uint32(0); ; {
		q := v4l2Queryctrl{ID: id | ctrlFlagNextCtrl}
		err := ioctl(fd, vidiocQueryctrl, unsafe.Pointer(&q))
		runtime.KeepAlive(&q)
		if err == unix.EINVAL {
			return fmt.Errorf("v4l2: %s: no control %q", path, name)
		}
		if err != nil {
			return fmt.Errorf("v4l2: %s: QUERYCTRL: %w", path, err)
		}
		id = q.ID
		if cstr(q.Name[:]) != name {
			continue
		}
		c := v4l2Control{ID: q.ID, Value: value}
		err = ioctl(fd, vidiocSCtrl, unsafe.Pointer(&c))
		runtime.KeepAlive(&c)
		if err != nil {
			return fmt.Errorf("v4l2: %s: set %q: %w", path, name, err)
		}
		return nil
	}
}
