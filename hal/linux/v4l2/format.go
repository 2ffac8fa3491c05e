// Package v4l2 is a hal.Camera over Video4Linux2 capture devices (USB webcams, the Pi's
// unicam/ISP nodes, vivid), built on github.com/blackjack/webcam. It picks a capture node and
// a mode (pixel format, size, frame rate), copies every frame out of the kernel's buffers into
// the caller's I420 hal.Frame, and reports an unplugged camera as ErrUnplugged so Reopener can
// bring it back when it returns.
//
// The pure parts (mode selection, pixel conversion, the read loop over a small device seam,
// the reopen logic) build and are tested on every platform; only the files that touch
// /dev/video* are Linux-only.
package v4l2

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"roombox/hal"
)

// Errors callers compare with errors.Is.
var (
	// ErrNoDevice means no usable capture device is present: the camera is absent.
	ErrNoDevice = errors.New("v4l2: no capture device")
	// ErrNoFormat means the device offers none of the pixel formats this package converts.
	ErrNoFormat = errors.New("v4l2: no supported pixel format")
	// ErrUnplugged means the device went away while open (ENODEV, or its node vanished).
	ErrUnplugged = errors.New("v4l2: device unplugged")
	// ErrStalled means an open device delivered no frame within the read timeout.
	ErrStalled = errors.New("v4l2: no frame within the read timeout")
)

// PixelFormat is a V4L2 fourcc.
type PixelFormat uint32

func fourcc(s string) PixelFormat {
	return PixelFormat(s[0]) | PixelFormat(s[1])<<8 | PixelFormat(s[2])<<16 | PixelFormat(s[3])<<24
}

// The formats this package converts, in order of preference: NV12 and YUYV are copied and
// rearranged without allocating; MJPEG needs a JPEG decode per frame.
var (
	NV12  = fourcc("NV12")
	YUYV  = fourcc("YUYV")
	MJPEG = fourcc("MJPG")
)

var preference = []PixelFormat{NV12, YUYV, MJPEG}

func (p PixelFormat) String() string {
	b := []byte{byte(p), byte(p >> 8), byte(p >> 16), byte(p >> 24)}
	for _, c := range b {
		if c < ' ' || c > '~' {
			return fmt.Sprintf("PixelFormat(%#08x)", uint32(p))
		}
	}
	return string(b)
}

// RateRange is a span of frame rates in frames per second; a discrete rate has Min == Max.
type RateRange struct{ Min, Max float64 }

// Offer is one size of one pixel format a device can capture, with the frame rates it
// offers at that size; no Rates means the driver does not enumerate them (any is tried).
type Offer struct {
	Format        PixelFormat
	Width, Height int
	Rates         []RateRange
}

// Mode is what a device was asked for and agreed to.
type Mode struct {
	Format        PixelFormat
	Width, Height int
	FPS           float64
}

func (m Mode) String() string {
	return fmt.Sprintf("%v %dx%d@%g", m.Format, m.Width, m.Height, m.FPS)
}

// Want is the requested mode; a zero Format means any supported one.
type Want struct {
	Format        PixelFormat
	Width, Height int
	FPS           int
}

// Choose picks the offer that best matches w. In order: a rate of at least w.FPS (a camera
// that is smooth at a slightly wrong size beats a sharp slideshow — many USB cameras offer
// raw YUYV at 720p only at 5-10 fps but MJPEG at 30), then the size nearest w's (nothing
// downstream scales, so the camera's size is the stream's), then the preferred format, then
// the rate nearest w.FPS.
func Choose(offers []Offer, w Want) (Mode, error) {
	best, found := Mode{}, false
	var bestKey [4]float64
	for _, o := range offers {
		rank := slices.Index(preference, o.Format)
		if rank < 0 || (w.Format != 0 && o.Format != w.Format) || o.Width <= 0 || o.Height <= 0 {
			continue
		}
		fps := nearestRate(o.Rates, float64(w.FPS))
		slow := 0.0
		if fps < float64(w.FPS) {
			slow = 1
		}
		key := [4]float64{
			slow,
			float64(abs(o.Width-w.Width) + abs(o.Height-w.Height)),
			float64(rank),
			math.Abs(fps - float64(w.FPS)),
		}
		if !found || slices.Compare(key[:], bestKey[:]) < 0 {
			best, bestKey, found = Mode{Format: o.Format, Width: o.Width, Height: o.Height, FPS: fps}, key, true
		}
	}
	if !found {
		return Mode{}, ErrNoFormat
	}
	return best, nil
}

// Modes is what offers come to for a user: each size once, at the fastest rate offered at
// it in any format (a size without enumerated rates counts 30 fps), smallest first.
func Modes(offers []Offer) []hal.VideoFormat {
	fastest := map[[2]int]float64{}
	for _, o := range offers {
		if !slices.Contains(preference, o.Format) || o.Width <= 0 || o.Height <= 0 {
			continue
		}
		top := 30.0
		if len(o.Rates) > 0 {
			top = 0
			for _, r := range o.Rates {
				top = max(top, r.Max)
			}
		}
		k := [2]int{o.Width, o.Height}
		fastest[k] = max(fastest[k], top)
	}
	var out []hal.VideoFormat
	for k, fps := range fastest {
		out = append(out, hal.VideoFormat{Width: k[0], Height: k[1], FPS: int(math.Round(fps))})
	}
	slices.SortFunc(out, func(a, b hal.VideoFormat) int {
		return cmp.Or(cmp.Compare(a.Width*a.Height, b.Width*b.Height), cmp.Compare(a.Width, b.Width))
	})
	return out
}

// nearestRate is the offered rate nearest want; with no rates listed it is want itself.
func nearestRate(rates []RateRange, want float64) float64 {
	if len(rates) == 0 {
		return want
	}
	best := math.Inf(1)
	for _, r := range rates {
		c := min(max(want, r.Min), r.Max)
		if math.Abs(c-want) < math.Abs(best-want) || (math.Abs(c-want) == math.Abs(best-want) && c > best) {
			best = c
		}
	}
	return best
}

// SizeRange is a frame size enumeration entry: a discrete size has Min == Max and zero
// steps; a stepwise one spans Min..Max in steps; all zero means continuous (any size).
type SizeRange struct {
	MinWidth, MaxWidth, StepWidth    int
	MinHeight, MaxHeight, StepHeight int
}

// candidate is the size s offers closest to w x h: the size itself when discrete, w x h
// snapped into the range when stepwise, w x h when any size goes.
func (s SizeRange) candidate(w, h int) (int, int) {
	if s.MaxWidth == 0 && s.MaxHeight == 0 {
		return w, h
	}
	return snap(w, s.MinWidth, s.MaxWidth, s.StepWidth), snap(h, s.MinHeight, s.MaxHeight, s.StepHeight)
}

func snap(v, lo, hi, step int) int {
	v = min(max(v, lo), hi)
	if step > 1 {
		v = lo + (v-lo+step/2)/step*step
		if v > hi {
			v -= step
		}
	}
	return v
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
