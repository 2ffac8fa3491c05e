//go:build vmlabguest && linux

package guest

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl request numbers as the kernel's _IOC macro builds them (asm-generic layout, which
// x86, arm and arm64 share): direction, argument size, type letter, number.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | typ<<8 | nr
}

// ioctlPtr issues an ioctl whose argument is a pointer to *arg, with the request sized by
// *arg's type, so that a struct declared with the wrong layout fails (ENOTTY) rather than
// corrupting memory.
func ioctlPtr[T any](fd int, dir, typ, nr uintptr, arg *T) error {
	req := ioc(dir, typ, nr, unsafe.Sizeof(*arg))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(arg)))
	if errno != 0 {
		return errno
	}
	return nil
}

// ioctlInt issues an ioctl whose argument is an int passed by value (uinput's UI_SET_*BIT).
func ioctlInt(fd int, req uintptr, v int) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(v))
	if errno != 0 {
		return errno
	}
	return nil
}

// cstr is a NUL-terminated C string from a fixed-size field.
func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
