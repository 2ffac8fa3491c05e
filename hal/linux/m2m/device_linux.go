package m2m

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// devicePaths lists the V4L2 nodes Find scans by default.
const devicePaths = "/dev/video*"

// fileDevice is a V4L2 node opened by the kernel.
type fileDevice struct {
	fd  int
	pfd [1]unix.PollFd // Poll's argument, kept here so a poll allocates nothing
}

// OpenFile opens a V4L2 node read-write and non-blocking: DQBUF never blocks, Poll waits.
func OpenFile(path string) (Device, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &fileDevice{fd: fd}, nil
}

func (d *fileDevice) Ioctl(req uint, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), uintptr(req), uintptr(arg))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

func (d *fileDevice) Mmap(offset int64, length int) ([]byte, error) {
	return unix.Mmap(d.fd, offset, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func (d *fileDevice) Munmap(b []byte) error { return unix.Munmap(b) }

func (d *fileDevice) Poll(events int16, timeout time.Duration) (int16, error) {
	deadline := time.Now().Add(timeout)
	for {
		d.pfd[0] = unix.PollFd{Fd: int32(d.fd), Events: events}
		ms := int(time.Until(deadline).Milliseconds())
		n, err := unix.Poll(d.pfd[:], max(ms, 0))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return 0, err
		}
		return d.pfd[0].Revents, nil
	}
}

func (d *fileDevice) Close() error { return unix.Close(d.fd) }
