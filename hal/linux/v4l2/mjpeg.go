package v4l2

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"sync"

	"roombox/hal"
)

// mjpegDecoder decodes Motion-JPEG frames with image/jpeg. That allocates a new picture
// (about w*h*2 bytes) per frame, since image/jpeg cannot decode into a caller's buffer. It is
// acceptable because MJPEG is the last choice, taken only when a camera offers no raw mode at
// the wanted size and rate, and there the decode itself costs far more than the allocation.
type mjpegDecoder struct {
	scratch []byte // the frame with Huffman tables added, reused
	rd      bytes.Reader
}

func (d *mjpegDecoder) decode(f *hal.Frame, src []byte) error {
	data, ok := withHuffmanTables(d.scratch[:0], src)
	if !ok {
		return fmt.Errorf("%w: not a JPEG picture (%d bytes)", errBadFrame, len(src))
	}
	if len(data) > len(src) {
		d.scratch = data
	}
	d.rd.Reset(data)
	img, err := jpeg.Decode(&d.rd)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadFrame, err)
	}
	switch m := img.(type) {
	case *image.YCbCr:
		ycbcrToI420(f, m)
	case *image.Gray:
		w, h := m.Rect.Dx(), m.Rect.Dy()
		f.Ensure(w, h)
		for y := range h {
			copy(f.Y[y*f.StrideY:][:w], m.Pix[y*m.Stride:])
		}
		clear128(f.U)
		clear128(f.V)
	default:
		return fmt.Errorf("%w: JPEG colour model %T", errBadFrame, img)
	}
	return nil
}

// ycbcrToI420 copies a decoded picture; chroma other than 4:2:0 (USB cameras send 4:2:2)
// is point-sampled at even pixels, which is enough for a picture the encoder subsamples anyway.
func ycbcrToI420(f *hal.Frame, m *image.YCbCr) {
	r := m.Rect
	w, h := r.Dx(), r.Dy()
	f.Ensure(w, h)
	for y := range h {
		o := m.YOffset(r.Min.X, r.Min.Y+y)
		copy(f.Y[y*f.StrideY:][:w], m.Y[o:])
	}
	cw, ch := (w+1)/2, (h+1)/2
	if m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
		for y := range ch {
			o := m.COffset(r.Min.X, r.Min.Y+2*y)
			copy(f.U[y*f.StrideUV:][:cw], m.Cb[o:])
			copy(f.V[y*f.StrideUV:][:cw], m.Cr[o:])
		}
		return
	}
	for y := range ch {
		for x := range cw {
			o := m.COffset(r.Min.X+2*x, r.Min.Y+2*y)
			f.U[y*f.StrideUV+x], f.V[y*f.StrideUV+x] = m.Cb[o], m.Cr[o]
		}
	}
}

func clear128(b []byte) {
	for i := range b {
		b[i] = 128
	}
}

// withHuffmanTables returns src, or, when src has no DHT segment before its scan (Motion-JPEG
// from many UVC cameras leaves the standard tables out, and image/jpeg refuses such a
// picture), src with the standard tables inserted before the scan, built in buf. ok is false
// when src is not a JPEG picture.
func withHuffmanTables(buf, src []byte) (out []byte, ok bool) {
	if len(src) < 4 || src[0] != 0xff || src[1] != 0xd8 {
		return nil, false
	}
	for i := 2; i+4 <= len(src); {
		if src[i] != 0xff {
			return nil, false
		}
		switch marker := src[i+1]; {
		case marker == 0xff: // fill byte
			i++
			continue
		case marker == 0xc4: // DHT
			return src, true
		case marker == 0xda: // SOS: no tables came before the scan
			buf = append(buf, src[:i]...)
			buf = append(buf, standardDHT()...)
			return append(buf, src[i:]...), true
		}
		i += 2 + (int(src[i+2])<<8 | int(src[i+3]))
	}
	return nil, false
}

// standardDHT is a DHT segment with the four tables of ITU T.81 Annex K.3, which image/jpeg's
// encoder writes; taking them from it avoids a hand-copied table.
var standardDHT = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	img := image.NewYCbCr(image.Rect(0, 0, 16, 16), image.YCbCrSubsampleRatio420)
	if err := jpeg.Encode(&b, img, nil); err != nil {
		panic("v4l2: encoding a blank JPEG: " + err.Error())
	}
	p := b.Bytes()
	for i := 2; i+4 <= len(p); {
		n := 2 + (int(p[i+2])<<8 | int(p[i+3]))
		if p[i+1] == 0xc4 {
			return bytes.Clone(p[i : i+n])
		}
		i += n
	}
	panic("v4l2: image/jpeg wrote no DHT segment")
})
