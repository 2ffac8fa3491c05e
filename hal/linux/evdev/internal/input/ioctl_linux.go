package input

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ioctl issues req with a pointer (or nil) argument on f.
func Ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	return control(f, func(fd uintptr) error {
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg)); errno != 0 {
			return errno
		}
		return nil
	})
}

// IoctlInt issues req with an int passed by value, as EVIOCGRAB and UI_SET_*BIT take it.
func IoctlInt(f *os.File, req uint, v int) error {
	return control(f, func(fd uintptr) error { return unix.IoctlSetInt(int(fd), req, v) })
}

// control runs fn on f's descriptor without f.Fd, which would switch f to blocking mode
// and make read deadlines useless.
func control(f *os.File, fn func(fd uintptr) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(fd) }); err != nil {
		return err
	}
	return ferr
}
