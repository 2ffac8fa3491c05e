package v4l2

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"roombox/internal/v4l2uapi"
)

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
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

// queryCap and getFormat query a second descriptor of the node directly: blackjack/webcam
// neither reports per-node device_caps nor reads back bytesperline. A capture device's
// format is per device, not per open file, so G_FMT sees what webcam set.
func queryCap(fd int, path string) (Node, error) {
	var c v4l2uapi.Capability
	err := ioctl(fd, v4l2uapi.QueryCap, unsafe.Pointer(&c))
	runtime.KeepAlive(&c)
	if err != nil {
		return Node{}, fmt.Errorf("v4l2: %s: QUERYCAP: %w", path, err)
	}
	return Node{
		Path: path, Driver: v4l2uapi.CString(c.Driver[:]), Card: v4l2uapi.CString(c.Card[:]),
		BusInfo:      v4l2uapi.CString(c.BusInfo[:]),
		Capabilities: c.Capabilities, DeviceCaps: c.DeviceCaps,
	}, nil
}

func getFormat(fd int, path string) (layout, error) {
	f := v4l2uapi.Format{Type: v4l2uapi.BufTypeVideoCapture}
	err := ioctl(fd, v4l2uapi.GFmt, unsafe.Pointer(&f))
	runtime.KeepAlive(&f)
	if err != nil {
		return layout{}, fmt.Errorf("v4l2: %s: G_FMT: %w", path, err)
	}
	p := f.Pix()
	return layout{Format: PixelFormat(p.PixelFormat), Width: int(p.Width), Height: int(p.Height), Stride: int(p.BytesPerLine)}, nil
}

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
		q := v4l2uapi.QueryControl{ID: id | v4l2uapi.CtrlFlagNextCtrl}
		err := ioctl(fd, v4l2uapi.QueryCtrl, unsafe.Pointer(&q))
		runtime.KeepAlive(&q)
		if err == unix.EINVAL {
			return fmt.Errorf("v4l2: %s: no control %q", path, name)
		}
		if err != nil {
			return fmt.Errorf("v4l2: %s: QUERYCTRL: %w", path, err)
		}
		id = q.ID
		if v4l2uapi.CString(q.Name[:]) != name {
			continue
		}
		c := v4l2uapi.Control{ID: q.ID, Value: value}
		err = ioctl(fd, v4l2uapi.SCtrl, unsafe.Pointer(&c))
		runtime.KeepAlive(&c)
		if err != nil {
			return fmt.Errorf("v4l2: %s: set %q: %w", path, name, err)
		}
		return nil
	}
}
