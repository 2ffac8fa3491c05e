package media

import (
	"fmt"
	"math"
	"testing"

	"roombox/hal"
)

// scaled is a new scaler to w x h and what it made of src.
func scaled(tb testing.TB, src *hal.Frame, w, h int) (*Scaler, *hal.Frame) {
	tb.Helper()
	s, err := NewScaler(w, h)
	if err != nil {
		tb.Fatal(err)
	}
	dst, err := s.Scale(src)
	if err != nil {
		tb.Fatal(err)
	}
	return s, dst
}

// blockMeans is the mean of each b x b block of a w x h plane with the given stride.
func blockMeans(p []byte, stride, w, h, b int) []float64 {
	var means []float64
	for by := 0; by+b <= h; by += b {
		for bx := 0; bx+b <= w; bx += b {
			sum := 0
			for y := by; y < by+b; y++ {
				for x := bx; x < bx+b; x++ {
					sum += int(p[y*stride+x])
				}
			}
			means = append(means, float64(sum)/float64(b*b))
		}
	}
	return means
}

// Scaling the simulated camera's picture (moving pattern, stamp, text) by 2 and by 4 keeps
// what a block of the source averages to: each 16x16 luma block of the 1280x720 frame
// against the 8x8 (half) or 4x4 (quarter) block it became, and the chroma the same way.
func TestScalerKeepsBlockMeans(t *testing.T) {
	src := simFrames(t, 1280, 720, 1)[0]
	for _, div := range []int{2, 4} {
		t.Run(fmt.Sprintf("1/%d", div), func(t *testing.T) {
			_, dst := scaled(t, src, 1280/div, 720/div)
			if dst.Width != 1280/div || dst.Height != 720/div || dst.Seq != src.Seq || !dst.Captured.Equal(src.Captured) {
				t.Fatalf("scaled frame %dx%d seq %d at %v", dst.Width, dst.Height, dst.Seq, dst.Captured)
			}
			for _, p := range []struct {
				name      string
				s, d      []byte
				ss, ds    int
				w, h, b   int
				maxDiff   float64
				minSpread float64
			}{
				{"Y", src.Y, dst.Y, src.StrideY, dst.StrideY, 1280, 720, 16, 1.0, 50},
				{"U", src.U, dst.U, src.StrideUV, dst.StrideUV, 640, 360, 8, 1.0, 0},
				{"V", src.V, dst.V, src.StrideUV, dst.StrideUV, 640, 360, 8, 1.0, 0},
			} {
				want := blockMeans(p.s, p.ss, p.w, p.h, p.b)
				got := blockMeans(p.d, p.ds, p.w/div, p.h/div, p.b/div)
				if len(got) != len(want) {
					t.Fatalf("%s: %d blocks, want %d", p.name, len(got), len(want))
				}
				lo, hi, worst := 255.0, 0.0, 0.0
				for i := range want {
					worst = max(worst, math.Abs(got[i]-want[i]))
					lo, hi = min(lo, want[i]), max(hi, want[i])
				}
				t.Logf("%s: %d blocks, source means %.0f..%.0f, largest difference %.2f", p.name, len(want), lo, hi, worst)
				if worst > p.maxDiff {
					t.Errorf("%s: a block's mean moved by %.2f", p.name, worst)
				}
				if hi-lo < p.minSpread {
					t.Errorf("%s: source means %.0f..%.0f: the pattern is too flat to show anything", p.name, lo, hi)
				}
			}
		})
	}
}

// A sharp vertical edge stays where it was, and as sharp: a box filter aligned to it mixes
// nothing across it. A padded stride on the way in.
func TestScalerEdge(t *testing.T) {
	const w, h, stride = 640, 360, 700
	src := &hal.Frame{Width: w, Height: h, StrideY: stride, StrideUV: stride / 2,
		Y: make([]byte, stride*h), U: make([]byte, stride/2*h/2), V: make([]byte, stride/2*h/2)}
	for y := range h {
		for x := range w {
			src.Y[y*stride+x] = 16
			if x >= 320 {
				src.Y[y*stride+x] = 235
			}
		}
	}
	fill(src.U, 128)
	fill(src.V, 128)
	_, dst := scaled(t, src, 160, 90)
	for y := range 90 {
		for x := range 160 {
			want := byte(16)
			if x >= 80 {
				want = 235
			}
			if got := dst.Y[y*dst.StrideY+x]; got != want {
				t.Fatalf("luma at %d,%d is %d, want %d", x, y, got, want)
			}
		}
	}
	if lo, hi := lumaRange(dst.U); lo != 128 || hi != 128 {
		t.Fatalf("grey chroma became %d..%d", lo, hi)
	}
}

func TestScalerErrors(t *testing.T) {
	for _, sz := range [][2]int{{0, 90}, {161, 90}, {160, 1}} {
		if _, err := NewScaler(sz[0], sz[1]); err == nil {
			t.Errorf("size %v accepted", sz)
		}
	}
	s, err := NewScaler(160, 90)
	if err != nil {
		t.Fatal(err)
	}
	var short hal.Frame
	short.Ensure(640, 360)
	short.U = short.U[:100]
	if _, err := s.Scale(&short); err == nil {
		t.Fatal("a frame with a short plane was scaled")
	}
}

func TestScalerAllocs(t *testing.T) {
	src := simFrames(t, 1280, 720, 1)[0]
	s, _ := scaled(t, src, 640, 360) // sizes the output once
	if n := testing.AllocsPerRun(50, func() {
		if _, err := s.Scale(src); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Scale allocates %v times per frame", n)
	}
}

// BenchmarkScale is the scaler alone on a 1280x720 frame: to half and quarter size (the
// simulcast layers, the quarter either from the full frame or from the half one).
func BenchmarkScale(b *testing.B) {
	full := simFrames(b, 1280, 720, 1)[0]
	_, h := scaled(b, full, 640, 360)
	for _, c := range []struct {
		name string
		src  *hal.Frame
		w, h int
	}{
		{"720p-to-360p", full, 640, 360},
		{"720p-to-180p", full, 320, 180},
		{"360p-to-180p", h, 320, 180},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, _ := scaled(b, c.src, c.w, c.h) // sizes the output once
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Scale(c.src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
