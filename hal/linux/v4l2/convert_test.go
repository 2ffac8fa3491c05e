package v4l2

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"testing"

	"roombox/hal"
)

// planes is a test picture: luma w x h and chroma cw x ch, random.
type planes struct {
	w, h, cw, chH int
	y, u, v       []byte
}

func randomPlanes(r *rand.Rand, w, h, chromaRows int) planes {
	p := planes{w: w, h: h, cw: (w + 1) / 2, chH: chromaRows}
	p.y = make([]byte, w*h)
	p.u = make([]byte, p.cw*chromaRows)
	p.v = make([]byte, p.cw*chromaRows)
	for _, b := range [][]byte{p.y, p.u, p.v} {
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
	}
	return p
}

// dirtyFrame has planes larger than needed full of a marker, so a conversion that skips a
// sample leaves the marker behind.
func dirtyFrame() *hal.Frame {
	f := &hal.Frame{Y: bytes.Repeat([]byte{0xa5}, 64*64), U: bytes.Repeat([]byte{0xa5}, 32*32), V: bytes.Repeat([]byte{0xa5}, 32*32)}
	return f
}

// checkPlanes compares f with the expected I420 planes sample by sample.
func checkPlanes(t *testing.T, f *hal.Frame, w, h int, y, u, v []byte) {
	t.Helper()
	if f.Width != w || f.Height != h {
		t.Fatalf("frame is %dx%d, want %dx%d", f.Width, f.Height, w, h)
	}
	cw, ch := (w+1)/2, (h+1)/2
	for r := range h {
		for c := range w {
			if got, want := f.Y[r*f.StrideY+c], y[r*w+c]; got != want {
				t.Fatalf("Y(%d,%d) = %d, want %d", c, r, got, want)
			}
		}
	}
	for r := range ch {
		for c := range cw {
			if got, want := f.U[r*f.StrideUV+c], u[r*cw+c]; got != want {
				t.Fatalf("U(%d,%d) = %d, want %d", c, r, got, want)
			}
			if got, want := f.V[r*f.StrideUV+c], v[r*cw+c]; got != want {
				t.Fatalf("V(%d,%d) = %d, want %d", c, r, got, want)
			}
		}
	}
}

func TestYUYVToI420(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ w, h, pad int }{{8, 4, 0}, {6, 5, 3}, {7, 5, 8}, {1, 1, 0}, {9, 2, 1}} {
		t.Run(fmt.Sprintf("%dx%d+%d", tc.w, tc.h, tc.pad), func(t *testing.T) {
			p := randomPlanes(r, tc.w, tc.h, tc.h) // 4:2:2: full-height chroma
			stride := 4*p.cw + tc.pad
			src := bytes.Repeat([]byte{0xee}, stride*tc.h) // padding bytes are 0xee
			for y := range tc.h {
				for x := range p.cw {
					m := src[y*stride+4*x:]
					m[0], m[1], m[3] = p.y[y*tc.w+2*x], p.u[y*p.cw+x], p.v[y*p.cw+x]
					if 2*x+1 < tc.w {
						m[2] = p.y[y*tc.w+2*x+1]
					}
				}
			}
			// Expected chroma: the rounded mean of the two rows each 4:2:0 sample covers,
			// the last row alone when the height is odd.
			ch := (tc.h + 1) / 2
			wu, wv := make([]byte, p.cw*ch), make([]byte, p.cw*ch)
			for cy := range ch {
				y0, y1 := 2*cy, min(2*cy+1, tc.h-1)
				for x := range p.cw {
					wu[cy*p.cw+x] = byte((int(p.u[y0*p.cw+x]) + int(p.u[y1*p.cw+x]) + 1) / 2)
					wv[cy*p.cw+x] = byte((int(p.v[y0*p.cw+x]) + int(p.v[y1*p.cw+x]) + 1) / 2)
				}
			}
			c := converter{layout: layout{Format: YUYV, Width: tc.w, Height: tc.h, Stride: stride}}
			f := dirtyFrame()
			if err := c.convert(f, src); err != nil {
				t.Fatal(err)
			}
			checkPlanes(t, f, tc.w, tc.h, p.y, wu, wv)
		})
	}
}

func TestNV12ToI420(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ w, h, pad int }{{8, 4, 0}, {6, 5, 2}, {7, 3, 9}, {1, 1, 0}, {10, 7, 64}} {
		t.Run(fmt.Sprintf("%dx%d+%d", tc.w, tc.h, tc.pad), func(t *testing.T) {
			ch := (tc.h + 1) / 2
			p := randomPlanes(r, tc.w, tc.h, ch)
			stride := max(tc.w, 2*p.cw) + tc.pad
			src := bytes.Repeat([]byte{0xee}, stride*(tc.h+ch))
			for y := range tc.h {
				copy(src[y*stride:], p.y[y*tc.w:(y+1)*tc.w])
			}
			for y := range ch {
				for x := range p.cw {
					src[(tc.h+y)*stride+2*x] = p.u[y*p.cw+x]
					src[(tc.h+y)*stride+2*x+1] = p.v[y*p.cw+x]
				}
			}
			c := converter{layout: layout{Format: NV12, Width: tc.w, Height: tc.h, Stride: stride}}
			f := dirtyFrame()
			if err := c.convert(f, src); err != nil {
				t.Fatal(err)
			}
			checkPlanes(t, f, tc.w, tc.h, p.y, p.u, p.v)
		})
	}
}

func TestShortBufferIsABadFrame(t *testing.T) {
	for _, l := range []layout{
		{Format: YUYV, Width: 8, Height: 4, Stride: 16},
		{Format: NV12, Width: 8, Height: 4, Stride: 8},
	} {
		c := converter{layout: l}
		full := l.Stride * l.Height
		if l.Format == NV12 {
			full = l.Stride * l.Height * 3 / 2
		}
		if err := c.convert(&hal.Frame{}, make([]byte, full)); err != nil {
			t.Errorf("%v: full buffer: %v", l.Format, err)
		}
		if err := c.convert(&hal.Frame{}, make([]byte, full-1)); !errors.Is(err, errBadFrame) {
			t.Errorf("%v: short buffer: err = %v, want errBadFrame", l.Format, err)
		}
	}
}

func TestRawConversionAllocatesNothing(t *testing.T) {
	for _, l := range []layout{
		{Format: YUYV, Width: 640, Height: 360, Stride: 1280},
		{Format: NV12, Width: 640, Height: 360, Stride: 640},
	} {
		c := converter{layout: l}
		src := make([]byte, l.Stride*l.Height*2)
		var f hal.Frame
		if a := testing.AllocsPerRun(20, func() {
			if err := c.convert(&f, src); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%v: %v allocations per frame, want 0", l.Format, a)
		}
	}
}

// barsImage draws four vertical bars in a YCbCr picture with the given chroma subsampling.
func barsImage(w, h int, ratio image.YCbCrSubsampleRatio) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), ratio)
	cols := []color.YCbCr{{200, 60, 160}, {150, 180, 60}, {90, 100, 200}, {30, 160, 100}}
	for y := range h {
		for x := range w {
			c := cols[x*len(cols)/w]
			m.Y[m.YOffset(x, y)] = c.Y
			m.Cb[m.COffset(x, y)], m.Cr[m.COffset(x, y)] = c.Cb, c.Cr
		}
	}
	return m
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stripDHT removes the Huffman table segments, as UVC cameras send Motion-JPEG.
func stripDHT(t *testing.T, p []byte) []byte {
	out := append([]byte(nil), p[:2]...)
	i := 2
	for p[i+1] != 0xda {
		n := 2 + (int(p[i+2])<<8 | int(p[i+3]))
		if p[i+1] != 0xc4 {
			out = append(out, p[i:i+n]...)
		}
		i += n
	}
	out = append(out, p[i:]...)
	if bytes.Equal(out, p) {
		t.Fatal("no DHT segment to strip")
	}
	return out
}

func TestMJPEGToI420(t *testing.T) {
	const w, h = 64, 32
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio444} {
		t.Run(ratio.String(), func(t *testing.T) {
			src := barsImage(w, h, ratio)
			data := encodeJPEG(t, src)
			want, err := jpeg.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			wm := want.(*image.YCbCr)
			for name, in := range map[string][]byte{"with tables": data, "without tables": stripDHT(t, data)} {
				c := converter{layout: layout{Format: MJPEG, Width: w, Height: h}}
				f := dirtyFrame()
				if err := c.convert(f, in); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if f.Width != w || f.Height != h {
					t.Fatalf("%s: %dx%d", name, f.Width, f.Height)
				}
				// The frame holds exactly what image/jpeg decodes, chroma taken at even pixels.
				for y := range h {
					for x := range w {
						if got, want := f.Y[y*f.StrideY+x], wm.Y[wm.YOffset(x, y)]; got != want {
							t.Fatalf("%s: Y(%d,%d) = %d, want %d", name, x, y, got, want)
						}
					}
				}
				for y := range h / 2 {
					for x := range w / 2 {
						o := wm.COffset(2*x, 2*y)
						if f.U[y*f.StrideUV+x] != wm.Cb[o] || f.V[y*f.StrideUV+x] != wm.Cr[o] {
							t.Fatalf("%s: chroma (%d,%d) = %d,%d, want %d,%d", name, x, y, f.U[y*f.StrideUV+x], f.V[y*f.StrideUV+x], wm.Cb[o], wm.Cr[o])
						}
					}
				}
			}
		})
	}
}

func TestMJPEGGrey(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 16, 16))
	for i := range g.Pix {
		g.Pix[i] = byte(i)
	}
	c := converter{layout: layout{Format: MJPEG, Width: 16, Height: 16}}
	f := dirtyFrame()
	if err := c.convert(f, encodeJPEG(t, g)); err != nil {
		t.Fatal(err)
	}
	if f.U[0] != 128 || f.V[len(f.V)-1] != 128 {
		t.Errorf("grey picture chroma = %d, %d; want 128", f.U[0], f.V[len(f.V)-1])
	}
}

func TestMJPEGGarbageIsABadFrame(t *testing.T) {
	c := converter{layout: layout{Format: MJPEG, Width: 16, Height: 16}}
	good := encodeJPEG(t, barsImage(16, 16, image.YCbCrSubsampleRatio420))
	for name, in := range map[string][]byte{
		"empty": nil, "not jpeg": []byte("hello, world"), "truncated": good[:len(good)/2],
	} {
		if err := c.convert(&hal.Frame{}, in); !errors.Is(err, errBadFrame) {
			t.Errorf("%s: err = %v, want errBadFrame", name, err)
		}
	}
}

func benchConvert(b *testing.B, l layout, src []byte) {
	c := converter{layout: l}
	var f hal.Frame
	b.SetBytes(int64(l.Width * l.Height * 3 / 2))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.convert(&f, src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkYUYV640x360(b *testing.B) {
	benchConvert(b, layout{Format: YUYV, Width: 640, Height: 360, Stride: 1280}, make([]byte, 1280*360))
}

func BenchmarkNV12640x360(b *testing.B) {
	benchConvert(b, layout{Format: NV12, Width: 640, Height: 360, Stride: 640}, make([]byte, 640*360*3/2))
}

func BenchmarkMJPEG640x360(b *testing.B) {
	data := encodeJPEG(b, barsImage(640, 360, image.YCbCrSubsampleRatio422))
	benchConvert(b, layout{Format: MJPEG, Width: 640, Height: 360}, data)
}
