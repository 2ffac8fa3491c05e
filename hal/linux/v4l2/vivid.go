package v4l2

import (
	"errors"
	"fmt"

	"roombox/hal"
)

// vivid, the kernel's virtual video driver, draws 75 % colour bars by default: eight bars of
// equal width, 75 % white, yellow, cyan, green, magenta, red, blue and black, whose luma falls
// left to right (BT.601 limited range: about 180, 162, 131, 112, 84, 65, 35, 16). Over the
// top-left it prints an OSD of 16-pixel text lines; the second line holds the capture time in
// milliseconds and the buffer's sequence number, so it changes every frame while the bars
// stay still. The checks below test a captured frame against that, so a run against vivid
// proves pixels went through the driver, the format negotiation and the conversion intact.

// ErrNotBars means a frame does not show vivid's colour bars.
var ErrNotBars = errors.New("v4l2: frame does not show colour bars")

// barRows are the rows sampled for the bars: the bottom of the picture, below the OSD.
const barRows = 4

// ColourBarLuma returns the mean luma at the middle half of each of eight equal-width
// columns, over the bottom rows of f.
func ColourBarLuma(f *hal.Frame) [8]int {
	var out [8]int
	bw := f.Width / 8
	for i := range out {
		sum, n := 0, 0
		for y := f.Height - barRows; y < f.Height; y++ {
			for x := i*bw + bw/4; x < i*bw+3*bw/4; x++ {
				sum += int(f.Y[y*f.StrideY+x])
				n++
			}
		}
		out[i] = sum / max(n, 1)
	}
	return out
}

// CheckColourBars checks that f shows eight bars whose luma falls left to right by at least
// 10 levels a bar (the smallest step of 75 % bars is 18), from a light first bar (>= 150) to
// a dark last one (<= 40). It returns the bars' luma either way.
func CheckColourBars(f *hal.Frame) ([8]int, error) {
	if f.Width < 64 || f.Height < barRows {
		return [8]int{}, fmt.Errorf("%w: %dx%d is too small to tell", ErrNotBars, f.Width, f.Height)
	}
	l := ColourBarLuma(f)
	if l[0] < 150 || l[7] > 40 {
		return l, fmt.Errorf("%w: first bar luma %d, last %d: %v", ErrNotBars, l[0], l[7], l)
	}
	for i := 1; i < len(l); i++ {
		if l[i] > l[i-1]-10 {
			return l, fmt.Errorf("%w: bar %d luma %d is not below bar %d's %d: %v", ErrNotBars, i, l[i], i-1, l[i-1], l)
		}
	}
	return l, nil
}

// osdRows are the OSD's first three text lines, which include the frame counter.
const osdRows = 48

// CheckAdvanced checks that b is a later picture than a: the OSD region differs (vivid's
// counter moved on) while the bars below it are the same, so a driver handing out a stale
// buffer, or a conversion mixing frames up, fails.
func CheckAdvanced(a, b *hal.Frame) error {
	if a.Width != b.Width || a.Height != b.Height || a.Height < osdRows+barRows {
		return fmt.Errorf("v4l2: frames %dx%d and %dx%d cannot be compared", a.Width, a.Height, b.Width, b.Height)
	}
	changed := 0
	for y := range osdRows {
		for x := range a.Width {
			if a.Y[y*a.StrideY+x] != b.Y[y*b.StrideY+x] {
				changed++
			}
		}
	}
	if changed == 0 {
		return errors.New("v4l2: the OSD did not change between the frames: a stale or repeated buffer")
	}
	la, lb := ColourBarLuma(a), ColourBarLuma(b)
	for i := range la {
		if d := la[i] - lb[i]; d < -4 || d > 4 {
			return fmt.Errorf("v4l2: the bars changed between frames: %v then %v", la, lb)
		}
	}
	return nil
}
