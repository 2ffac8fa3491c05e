package v4l2

import (
	"errors"
	"fmt"

	"roombox/hal"
)

// errBadFrame marks a captured buffer that cannot be a picture of the negotiated layout (a
// short or corrupt frame, which USB cameras deliver now and then); the reader drops it and
// waits for the next one.
var errBadFrame = errors.New("v4l2: bad frame")

// layout is how the driver lays a frame out in its buffer, from G_FMT after S_FMT.
type layout struct {
	Format        PixelFormat
	Width, Height int
	Stride        int // bytes per line of the first plane (bytesperline)
}

// converter turns captured buffers of one layout into I420. It owns the scratch state of
// the MJPEG path; the raw paths write straight into the frame.
type converter struct {
	layout
	jpeg mjpegDecoder
}

// convert fills f from the captured buffer src; f is resized only if it is too small.
func (c *converter) convert(f *hal.Frame, src []byte) error {
	l := c.layout
	switch l.Format {
	case YUYV:
		if len(src) < l.Stride*(l.Height-1)+4*((l.Width+1)/2) {
			return fmt.Errorf("%w: %d bytes for YUYV %dx%d stride %d", errBadFrame, len(src), l.Width, l.Height, l.Stride)
		}
		f.Ensure(l.Width, l.Height)
		yuyvToI420(f, src, l.Stride)
	case NV12:
		uv := l.Stride * l.Height // single-planar NV12: the CbCr plane follows the luma, same stride
		if len(src) < uv+l.Stride*((l.Height+1)/2-1)+2*((l.Width+1)/2) {
			return fmt.Errorf("%w: %d bytes for NV12 %dx%d stride %d", errBadFrame, len(src), l.Width, l.Height, l.Stride)
		}
		f.Ensure(l.Width, l.Height)
		nv12ToI420(f, src, l.Stride, uv)
	case MJPEG:
		return c.jpeg.decode(f, src)
	default:
		return fmt.Errorf("v4l2: cannot convert %v", l.Format)
	}
	return nil
}

// yuyvToI420 converts packed 4:2:2 (Y0 U Y1 V per pixel pair) into f's planes, already
// sized for the picture. Each chroma sample is the mean of the two rows it covers.
func yuyvToI420(f *hal.Frame, src []byte, stride int) {
	w, h := f.Width, f.Height
	pairs := w / 2
	for y := 0; y < h; y += 2 {
		y1 := min(y+1, h-1) // an odd last row pairs with itself
		r0 := src[y*stride:][:4*((w+1)/2)]
		r1 := src[y1*stride:][:4*((w+1)/2)]
		d0 := f.Y[y*f.StrideY:][:w]
		d1 := f.Y[y1*f.StrideY:][:w]
		u := f.U[y/2*f.StrideUV:][:(w+1)/2]
		v := f.V[y/2*f.StrideUV:][:(w+1)/2]
		for x := range pairs {
			p0, p1 := r0[4*x:4*x+4], r1[4*x:4*x+4]
			d0[2*x], d0[2*x+1] = p0[0], p0[2]
			d1[2*x], d1[2*x+1] = p1[0], p1[2]
			u[x] = byte((uint(p0[1]) + uint(p1[1]) + 1) >> 1)
			v[x] = byte((uint(p0[3]) + uint(p1[3]) + 1) >> 1)
		}
		if w%2 == 1 { // the last pair's second pixel is outside the picture
			p0, p1 := r0[4*pairs:4*pairs+4], r1[4*pairs:4*pairs+4]
			d0[w-1], d1[w-1] = p0[0], p1[0]
			u[pairs] = byte((uint(p0[1]) + uint(p1[1]) + 1) >> 1)
			v[pairs] = byte((uint(p0[3]) + uint(p1[3]) + 1) >> 1)
		}
	}
}

// nv12ToI420 copies the luma rows and splits the interleaved CbCr plane at uvOffset.
func nv12ToI420(f *hal.Frame, src []byte, stride, uvOffset int) {
	w, h := f.Width, f.Height
	for y := range h {
		copy(f.Y[y*f.StrideY:][:w], src[y*stride:][:w])
	}
	cw := (w + 1) / 2
	for y := range (h + 1) / 2 {
		row := src[uvOffset+y*stride:][:2*cw]
		u := f.U[y*f.StrideUV:][:cw]
		v := f.V[y*f.StrideUV:][:cw]
		for x := range cw {
			u[x], v[x] = row[2*x], row[2*x+1]
		}
	}
}
