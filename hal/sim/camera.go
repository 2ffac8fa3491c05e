package sim

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"roombox/hal"
)

// Camera is a test-pattern camera: 75 % colour bars, a box moving 4 pixels a frame across
// them, a band of stripes scrolling 3 pixels a frame below, and the Stamp in the top-left
// corner. Frames come at FPS on the schedule start + n/FPS; a reader more than a frame late
// gets the current frame and Seq skips the missed ones, as with a real capture queue.
// ReadFrame and SetFormat are for one goroutine; Format and Close may be called from any.
type Camera struct {
	mu     sync.Mutex // guards format, which Format reads from any goroutine
	format hal.VideoFormat
	clock  Clock
	pace   pacer
	base   uint64 // frames of the formats before this one: Seq keeps counting across SetFormat
	closed atomic.Bool

	bg      hal.Frame // bars and the grey band, drawn once
	stripes []byte    // luma of the stripe band, stripePeriod pixels wider than the frame
	bandY   int       // first row of the stripe band
	box     int       // box side in pixels (even)
	boxY    int       // top row of the box
}

const (
	boxStep      = 4  // pixels the box moves per frame
	stripeStep   = 3  // pixels the stripes scroll per frame
	stripePeriod = 24 // pixels
)

// bars are 75 % colour bars in BT.601 limited-range Y, U, V: white, yellow, cyan, green,
// magenta, red, blue.
var bars = [7][3]byte{
	{180, 128, 128}, {162, 44, 142}, {131, 156, 44}, {112, 72, 58},
	{84, 184, 198}, {65, 100, 212}, {35, 212, 114},
}

func newCamera(f hal.VideoFormat, clock Clock) *Camera {
	c := &Camera{clock: clock}
	c.setup(f)
	return c
}

// setup starts rendering at f: a new schedule at its rate, the pattern drawn at its size.
func (c *Camera) setup(f hal.VideoFormat) {
	c.mu.Lock()
	c.format = f
	c.mu.Unlock()
	c.pace = pacer{clock: c.clock, rate: int64(f.FPS), maxLag: time.Second / time.Duration(f.FPS)}
	c.bandY = f.Height * 2 / 3 &^ 1
	c.box = f.Height / 6 &^ 1
	c.boxY = ((c.bandY-c.box)/2 + StampCell(f.Width)*stampRows/2) &^ 1
	c.drawBackground()
}

// SetFormat renders at want from the next frame (hal.FormatSetter): the simulated camera
// has every mode from 64x64 to 1920x1088 at 1 to 60 fps, even sizes.
func (c *Camera) SetFormat(_ context.Context, want hal.VideoFormat) (hal.VideoFormat, error) {
	if want.Width < 64 || want.Height < 64 || want.Width > 1920 || want.Height > 1088 ||
		want.Width%2 != 0 || want.Height%2 != 0 || want.FPS < 1 || want.FPS > 60 {
		return c.Format(), fmt.Errorf("sim: camera has no mode %dx%d@%d (even sizes 64x64 to 1920x1088, 1 to 60 fps)",
			want.Width, want.Height, want.FPS)
	}
	c.base += uint64(c.pace.n)
	c.setup(want)
	return want, nil
}

func (c *Camera) drawBackground() {
	w, h := c.format.Width, c.format.Height
	bg := &c.bg
	bg.Ensure(w, h)
	for y := range h {
		for x := range w {
			bg.Y[y*bg.StrideY+x] = bars[x*len(bars)/w][0]
		}
	}
	for y := range (h + 1) / 2 {
		for x := range (w + 1) / 2 {
			b := bars[2*x*len(bars)/w]
			bg.U[y*bg.StrideUV+x], bg.V[y*bg.StrideUV+x] = b[1], b[2]
		}
	}
	for y := c.bandY / 2; y < (h+1)/2; y++ {
		clearTo(bg.U[y*bg.StrideUV:(y+1)*bg.StrideUV], 128)
		clearTo(bg.V[y*bg.StrideUV:(y+1)*bg.StrideUV], 128)
	}
	sw := w + stripePeriod
	c.stripes = make([]byte, sw*(h-c.bandY))
	for y := range h - c.bandY {
		for x := range sw {
			// Diagonal stripes: some texture for the encoder, cheap to move.
			ph := 2 * math.Pi * float64(x+y/2) / stripePeriod
			c.stripes[y*sw+x] = byte(126 + 60*math.Sin(ph))
		}
	}
}

// Modes lists the common 16:9 sizes up to 1080p at 60 fps (hal.ModeLister); the simulated
// camera renders any even size SetFormat takes.
func (c *Camera) Modes() []hal.VideoFormat {
	return []hal.VideoFormat{{Width: 640, Height: 360, FPS: 60}, {Width: 960, Height: 540, FPS: 60},
		{Width: 1280, Height: 720, FPS: 60}, {Width: 1920, Height: 1080, FPS: 60}}
}

// Format returns the size and rate rendered.
func (c *Camera) Format() hal.VideoFormat {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.format
}

// ReadFrame waits for the next frame slot and draws that frame into f.
func (c *Camera) ReadFrame(ctx context.Context, f *hal.Frame) error {
	if c.closed.Load() {
		return hal.ErrClosed
	}
	n, err := c.pace.next(ctx, 0, 1)
	if err != nil {
		return fmt.Errorf("sim: camera: %w", err)
	}
	if c.closed.Load() {
		return hal.ErrClosed
	}
	captured := time.Unix(0, c.pace.clock.Now().UnixNano())
	c.draw(f, uint64(n))
	seq := c.base + uint64(n)
	f.Seq, f.Captured = seq, captured
	EncodeStamp(f, Stamp{Seq: seq, Captured: captured})
	return nil
}

func (c *Camera) draw(f *hal.Frame, n uint64) {
	w, h := c.bg.Width, c.bg.Height
	f.Ensure(w, h)
	copy(f.Y, c.bg.Y)
	copy(f.U, c.bg.U)
	copy(f.V, c.bg.V)

	sw := w + stripePeriod
	shift := int(n * stripeStep % stripePeriod)
	for y := c.bandY; y < h; y++ {
		row := c.stripes[(y-c.bandY)*sw:]
		copy(f.Y[y*f.StrideY:y*f.StrideY+w], row[shift:shift+w])
	}

	// The box travels left to right over the bars and starts again at the left.
	x0 := int(n*boxStep%uint64(w-c.box)) &^ 1
	shade := byte(235)
	if n/uint64((w-c.box)/boxStep)%2 == 1 {
		shade = 16
	}
	for y := c.boxY; y < c.boxY+c.box; y++ {
		clearTo(f.Y[y*f.StrideY+x0:y*f.StrideY+x0+c.box], shade)
	}
	for y := c.boxY / 2; y < (c.boxY+c.box)/2; y++ {
		clearTo(f.U[y*f.StrideUV+x0/2:y*f.StrideUV+(x0+c.box)/2], 128)
		clearTo(f.V[y*f.StrideUV+x0/2:y*f.StrideUV+(x0+c.box)/2], 128)
	}
}

// Close makes further reads return hal.ErrClosed; a blocked read returns it at its next
// frame slot.
func (c *Camera) Close() error {
	c.closed.Store(true)
	return nil
}
