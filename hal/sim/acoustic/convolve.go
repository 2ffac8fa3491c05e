package acoustic

import "math/cmplx"

// blockLen is the convolver's block: it turns blockLen input samples into blockLen output
// samples at a time, so the echo path's delay must be at least that long (MinDelay) for a
// block's input to have been played by the time the microphone needs its output.
const blockLen = 256

// convolver filters a signal with a long impulse response, block by block: uniformly
// partitioned overlap-save. The response is cut into blockLen-sample partitions whose
// spectra are kept; every block's input spectrum goes into a delay line, and the output
// spectrum is the sum of each partition times the input spectrum as many blocks old. A
// 300 ms response costs ~60 products of 257 bins per 256-sample block, where direct
// convolution would take 14400 multiplies per sample.
type convolver struct {
	fft   *fft
	parts [][]complex128 // spectra of the response's partitions, blockLen+1 bins each
	line  [][]complex128 // input spectra, newest at head, older behind it
	head  int
	in    []float64    // the last two input blocks, oldest first
	work  []complex128 // 2*blockLen
	acc   []complex128 // blockLen+1
}

func newConvolver(h []float64) *convolver {
	n := 2 * blockLen
	p := (len(h) + blockLen - 1) / blockLen
	c := &convolver{
		fft:   newFFT(n),
		parts: make([][]complex128, p),
		line:  make([][]complex128, p),
		in:    make([]float64, n),
		work:  make([]complex128, n),
		acc:   make([]complex128, blockLen+1),
	}
	for i := range c.parts {
		clear(c.work)
		for j, v := range h[i*blockLen : min((i+1)*blockLen, len(h))] {
			c.work[j] = complex(v, 0)
		}
		c.fft.transform(c.work, false)
		c.parts[i] = append([]complex128(nil), c.work[:blockLen+1]...)
		c.line[i] = make([]complex128, blockLen+1)
	}
	return c
}

// reset forgets the input so far, as if it had been silent.
func (c *convolver) reset() {
	clear(c.in)
	for _, s := range c.line {
		clear(s)
	}
}

// block filters the next blockLen input samples x into out.
func (c *convolver) block(x, out []float64) {
	copy(c.in, c.in[blockLen:])
	copy(c.in[blockLen:], x)
	for i, v := range c.in {
		c.work[i] = complex(v, 0)
	}
	c.fft.transform(c.work, false)
	c.head = (c.head + 1) % len(c.line)
	copy(c.line[c.head], c.work[:blockLen+1])

	clear(c.acc)
	for i, part := range c.parts {
		spec := c.line[(c.head-i+len(c.line))%len(c.line)]
		for k, v := range part {
			c.acc[k] += v * spec[k]
		}
	}
	// The output spectrum of a real signal is conjugate-symmetric: bins above blockLen mirror
	// those below.
	copy(c.work, c.acc)
	for k := 1; k < blockLen; k++ {
		c.work[2*blockLen-k] = cmplx.Conj(c.acc[k])
	}
	c.fft.transform(c.work, true)
	// Overlap-save: the first half is circular wrap-around; the second is the block's output.
	scale := 1 / float64(2*blockLen)
	for i := range out[:blockLen] {
		out[i] = real(c.work[blockLen+i]) * scale
	}
}
