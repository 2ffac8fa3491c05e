package v4l2

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"roombox/hal"
)

// device is the seam between Camera and V4L2: a streaming capture device whose buffers are
// dequeued, read and queued again. On Linux it is a *webcam.Webcam; tests use a fake.
type device interface {
	// Wait blocks until a buffer can be dequeued, for at most about d; it returns
	// errWaitTimeout when none came.
	Wait(d time.Duration) error
	// Dequeue takes a filled buffer; its bytes are the kernel's until Release.
	Dequeue() (buf []byte, index uint32, err error)
	Release(index uint32) error
	Close() error
}

var errWaitTimeout = errors.New("v4l2: wait timed out")

// pollInterval bounds one wait on the device, so a cancelled context or a Close is noticed
// within it: blackjack/webcam polls in whole seconds and a poll cannot be interrupted.
const pollInterval = time.Second

// Camera is a hal.Camera on an open, streaming capture device. ReadFrame is for one goroutine;
// Close may be called from any, and returns once a ReadFrame in progress has let go of the
// device (within pollInterval), so no kernel buffer is unmapped while it is being read.
type Camera struct {
	path        string
	node        Node
	mode        Mode
	modes       []hal.VideoFormat // what the device offered when opened
	clock       hal.Clock
	readTimeout time.Duration
	gone        func() bool // whether the device node has vanished

	mu      sync.Mutex // held while the device is used; Close takes it to close the device
	dev     device
	conv    converter
	seq     uint64
	dropped atomic.Uint64
	closed  atomic.Bool
}

func newCamera(path string, dev device, mode Mode, l layout, clock hal.Clock, readTimeout time.Duration, gone func() bool) *Camera {
	return &Camera{
		path: path, mode: mode, clock: clock, readTimeout: readTimeout, gone: gone,
		dev: dev, conv: converter{layout: l},
	}
}

// Path is the device node the camera reads.
func (c *Camera) Path() string { return c.path }

// Node is what the device said of itself when opened.
func (c *Camera) Node() Node { return c.node }

// Mode is the pixel format, size and rate the device agreed to.
func (c *Camera) Mode() Mode { return c.mode }

// Modes lists the sizes the device offered when opened, each at its fastest rate
// (hal.ModeLister).
func (c *Camera) Modes() []hal.VideoFormat { return slices.Clone(c.modes) }

// Dropped counts captured buffers thrown away as short or corrupt.
func (c *Camera) Dropped() uint64 { return c.dropped.Load() }

// Format returns the negotiated size and rate (rounded to whole frames per second).
func (c *Camera) Format() hal.VideoFormat {
	return hal.VideoFormat{Width: c.mode.Width, Height: c.mode.Height, FPS: int(math.Round(c.mode.FPS))}
}

// ReadFrame waits for the next captured frame and converts it into f. Seq counts frames this
// Camera delivered; Captured is the clock's time when the buffer was dequeued (blackjack/webcam
// does not pass the kernel's buffer timestamp on; the dequeue follows the poll wake-up at once).
// It returns ErrUnplugged when the device went away and ErrStalled after readTimeout without a
// frame; both mean the Camera is of no further use.
func (c *Camera) ReadFrame(ctx context.Context, f *hal.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	deadline := c.clock.Now().Add(c.readTimeout)
	for {
		if c.closed.Load() || c.dev == nil {
			return hal.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("v4l2: %s: %w", c.path, err)
		}
		err := c.dev.Wait(min(pollInterval, max(deadline.Sub(c.clock.Now()), 0)))
		if errors.Is(err, errWaitTimeout) {
			if c.clock.Now().Before(deadline) {
				continue
			}
			if c.gone() {
				return fmt.Errorf("v4l2: %s: %w", c.path, ErrUnplugged)
			}
			return fmt.Errorf("v4l2: %s: %w (%v)", c.path, ErrStalled, c.readTimeout)
		}
		if err != nil {
			return c.fail("wait", err)
		}
		buf, index, err := c.dev.Dequeue()
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			continue // woken without a filled buffer
		}
		if err != nil {
			return c.fail("dequeue", err)
		}
		captured := c.clock.Now()
		convErr := c.conv.convert(f, buf)
		if err := c.dev.Release(index); err != nil {
			return c.fail("queue", err)
		}
		if errors.Is(convErr, errBadFrame) {
			c.dropped.Add(1)
			continue
		}
		if convErr != nil {
			return convErr
		}
		f.Seq, f.Captured = c.seq, captured
		c.seq++
		return nil
	}
}

// fail wraps a device error, as ErrUnplugged when the device is gone.
func (c *Camera) fail(op string, err error) error {
	if errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) || c.gone() {
		return fmt.Errorf("v4l2: %s: %s: %w: %w", c.path, op, ErrUnplugged, err)
	}
	return fmt.Errorf("v4l2: %s: %s: %w", c.path, op, err)
}

// Close stops streaming and closes the device; reads then return hal.ErrClosed.
func (c *Camera) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.dev.Close()
	c.dev = nil
	if err != nil && !errors.Is(err, syscall.ENODEV) { // closing an unplugged device is no news
		return fmt.Errorf("v4l2: %s: close: %w", c.path, err)
	}
	return nil
}
