// Package m2m drives a V4L2 memory-to-memory stateful H.264 encoder (the Raspberry Pi's
// bcm2835-codec at /dev/video11) with raw ioctls, as hal.VideoEncoder.
//
// Find picks the encoder node by what it can do, not by its path; NewEncoder opens it.
// Everything goes through Device, the ioctl seam: the real file descriptor in production,
// m2mtest's model of the driver in tests.
package m2m

import (
	"errors"
	"time"
	"unsafe"
)

// Device is an open V4L2 node: the seam between the encoder and the kernel.
type Device interface {
	// Ioctl issues request req with arg (a pointer to the request's struct), retrying
	// EINTR. Errors are unix.Errno values.
	Ioctl(req uint, arg unsafe.Pointer) error
	Mmap(offset int64, length int) ([]byte, error)
	Munmap(b []byte) error
	// Poll waits at most timeout for any of events (unix.POLLIN, POLLOUT, POLLPRI) and
	// returns those ready, plus POLLERR or POLLHUP; 0 when the time ran out.
	Poll(events int16, timeout time.Duration) (int16, error)
	Close() error
}

// OpenFunc opens a device node by path, non-blocking.
type OpenFunc func(path string) (Device, error)

// ErrNotFound says no node is an M2M H.264 encoder; the device then encodes in software.
var ErrNotFound = errors.New("m2m: no V4L2 M2M H.264 encoder")

// ErrClosed is returned by an Encoder used after Close.
var ErrClosed = errors.New("m2m: encoder closed")
