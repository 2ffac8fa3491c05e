package v4l2

import (
	"time"

	"roombox/hal"
)

// Config says which camera to open and how; zero fields take the defaults.
type Config struct {
	// Device is a node such as /dev/video0 or, steadier across replugs, a
	// /dev/v4l/by-id/... link. Empty picks the first capture node with a usable mode,
	// USB cameras first, and picks again on every reopen.
	Device        string
	Width, Height int         // default 640x360
	FPS           int         // default 30
	Format        PixelFormat // zero: NV12, YUYV, MJPEG by Choose's rules
	Clock         hal.Clock   // default the wall clock
	// ReadTimeout is how long a read waits for a frame before ErrStalled; default 3 s.
	ReadTimeout time.Duration
	Buffers     int // kernel buffers to stream with; default 4
}

func (c Config) withDefaults() Config {
	if c.Width == 0 && c.Height == 0 {
		c.Width, c.Height = 640, 360
	}
	if c.FPS == 0 {
		c.FPS = 30
	}
	if c.Clock == nil {
		c.Clock = hal.WallClock{}
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 3 * time.Second
	}
	if c.Buffers <= 0 {
		c.Buffers = 4
	}
	return c
}

func (c Config) want() Want {
	return Want{Format: c.Format, Width: c.Width, Height: c.Height, FPS: c.FPS}
}
