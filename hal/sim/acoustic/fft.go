package acoustic

import (
	"math"
	"math/bits"
	"math/cmplx"
)

// fft is an in-place iterative radix-2 FFT of one power-of-two size, with its twiddle
// factors and bit-reversal permutation computed once.
type fft struct {
	n       int
	twiddle []complex128 // exp(-2πik/n), k < n/2
	rev     []int        // bit-reversed index of each index
}

func newFFT(n int) *fft {
	if n < 2 || n&(n-1) != 0 {
		panic("acoustic: FFT size must be a power of two")
	}
	f := &fft{n: n, twiddle: make([]complex128, n/2), rev: make([]int, n)}
	for k := range f.twiddle {
		f.twiddle[k] = cmplx.Rect(1, -2*math.Pi*float64(k)/float64(n))
	}
	shift := bits.UintSize - bits.Len(uint(n-1))
	for i := range f.rev {
		f.rev[i] = int(bits.Reverse(uint(i)) >> shift)
	}
	return f
}

// transform replaces x (len n) by its DFT, or by n times its inverse DFT when inverse is set.
func (f *fft) transform(x []complex128, inverse bool) {
	for i, j := range f.rev {
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= f.n; size <<= 1 {
		half, step := size/2, f.n/size
		for start := 0; start < f.n; start += size {
			for k := range half {
				w := f.twiddle[k*step]
				if inverse {
					w = cmplx.Conj(w)
				}
				a, b := x[start+k], x[start+k+half]*w
				x[start+k], x[start+k+half] = a+b, a-b
			}
		}
	}
}
