package media

/*
#cgo LDFLAGS: -lyuv
#include <stdint.h>
#include <libyuv/scale.h>

// rb_i420_scale is libyuv's I420Scale with the box filter: the cheapest filter that
// averages every source pixel into a 2:1 or 4:1 reduction (bilinear samples only some of
// them and aliases fine detail), and libyuv's SIMD 2:1 path for it is what simulcast's
// half and quarter layers hit.
static int rb_i420_scale(const uint8_t *sy, int ssy, const uint8_t *su, const uint8_t *sv, int ssuv,
                         int sw, int sh, uint8_t *dy, int dsy, uint8_t *du, uint8_t *dv, int dsuv,
                         int dw, int dh) {
	return I420Scale(sy, ssy, su, ssuv, sv, ssuv, sw, sh, dy, dsy, du, dsuv, dv, dsuv, dw, dh, kFilterBox);
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"roombox/hal"
)

// Scaler resizes I420 frames to one size with libyuv. It owns the picture it returns and
// reuses it, so it allocates only on the first frame (or when the size changes). Not safe
// for concurrent use.
type Scaler struct {
	w, h int
	out  hal.Frame
}

// NewScaler returns a scaler to w x h, both even and at least 2.
func NewScaler(w, h int) (*Scaler, error) {
	if w < 2 || h < 2 || w%2 != 0 || h%2 != 0 {
		return nil, fmt.Errorf("media: scaler: size %dx%d must have even sides of 2 or more", w, h)
	}
	return &Scaler{w: w, h: h}, nil
}

// Scale returns src resized, carrying src's Seq and Captured. The picture is the
// scaler's and valid until its next call.
func (s *Scaler) Scale(src *hal.Frame) (*hal.Frame, error) {
	if !planesFit(src) {
		return nil, fmt.Errorf("media: scaler: source planes are too small for %dx%d", src.Width, src.Height)
	}
	d := &s.out
	d.Ensure(s.w, s.h)
	if rc := C.rb_i420_scale(cbytes(src.Y), C.int(src.StrideY), cbytes(src.U), cbytes(src.V), C.int(src.StrideUV),
		C.int(src.Width), C.int(src.Height), cbytes(d.Y), C.int(d.StrideY), cbytes(d.U), cbytes(d.V), C.int(d.StrideUV),
		C.int(d.Width), C.int(d.Height)); rc != 0 {
		return nil, fmt.Errorf("media: scaler: %dx%d to %dx%d failed (%d)", src.Width, src.Height, s.w, s.h, int(rc))
	}
	d.Seq, d.Captured = src.Seq, src.Captured
	return d, nil
}

// planesFit reports whether f's planes hold a whole f.Width x f.Height picture at its
// strides: what C code reading them must be sure of.
func planesFit(f *hal.Frame) bool {
	cw, ch := (f.Width+1)/2, (f.Height+1)/2
	return f.Width > 0 && f.Height > 0 && f.StrideY >= f.Width && f.StrideUV >= cw &&
		len(f.Y) >= f.StrideY*(f.Height-1)+f.Width &&
		len(f.U) >= f.StrideUV*(ch-1)+cw && len(f.V) >= f.StrideUV*(ch-1)+cw
}

// cbytes points C at the first byte of a Go slice (cgo lets C read it during the call).
func cbytes(b []byte) *C.uint8_t { return (*C.uint8_t)(unsafe.Pointer(&b[0])) }
