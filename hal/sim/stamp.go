package sim

import (
	"errors"
	"fmt"
	"time"

	"roombox/hal"
)

// Stamp is the machine-readable label the simulated camera draws into every frame, so a
// receiver can tell which frame it sees and when it was captured.
//
// Layout (stable: tests decode it from ffmpeg- and browser-decoded pixels):
//
//   - Cell size C = min(16, width/64 rounded down to even), at least 2. Luma 640 wide gives
//     C = 10, 1280 gives C = 16.
//   - The block sits at the top-left corner: 3 rows of 64 cells, each cell C x C luma
//     pixels, so the block is 64*C pixels wide and 3*C high.
//   - A cell is black (Y = 16) for bit 0 and white (Y = 235) for bit 1. Within a row the
//     most significant bit comes first (leftmost cell = bit 63).
//   - Row 0 is Seq; row 1 is Captured as Unix nanoseconds (int64 bits as uint64); row 2 is
//     the check Seq XOR nanoseconds XOR 0x5A5A5A5A5A5A5A5A.
//   - Chroma (U and V) under the block is 128, so the block is grey-scale in any colour
//     conversion.
//
// Decoding reads the mean of the 2x2 luma pixels at the centre of each cell (pixels
// C/2-1 and C/2 in each direction), a bit is 1 when that mean is >= 128, and the stamp is
// rejected with ErrStampCheck unless row 2 equals the check of rows 0 and 1. The threshold
// sits midway in both limited (16..235) and full (0..255) range, so luma from a decoder
// that expands the range (ffmpeg -pix_fmt gray, RGB from a browser canvas) decodes alike.
type Stamp struct {
	Seq      uint64
	Captured time.Time
}

// stampCheck is XORed into the check row.
const stampCheck uint64 = 0x5A5A5A5A5A5A5A5A

const (
	stampBits  = 64
	stampRows  = 3
	stampBlack = 16
	stampWhite = 235
)

// ErrStampCheck reports pixels whose check row does not match: no stamp, or a damaged one.
var ErrStampCheck = errors.New("sim: stamp check row mismatch")

// StampCell returns the stamp's cell size in pixels for a picture width.
func StampCell(width int) int {
	c := min(16, width/64) &^ 1
	return max(c, 2)
}

// EncodeStamp draws s into the top-left corner of f. It panics if f is smaller than the
// block (64*C x 3*C); the simulated camera never makes such frames.
func EncodeStamp(f *hal.Frame, s Stamp) {
	c := StampCell(f.Width)
	ns := uint64(s.Captured.UnixNano())
	rows := [stampRows]uint64{s.Seq, ns, s.Seq ^ ns ^ stampCheck}
	for r, v := range rows {
		for py := r * c; py < (r+1)*c; py++ {
			line := f.Y[py*f.StrideY : py*f.StrideY+stampBits*c]
			for bit := range stampBits {
				y := byte(stampBlack)
				if v>>(stampBits-1-bit)&1 == 1 {
					y = stampWhite
				}
				cell := line[bit*c : (bit+1)*c]
				for i := range cell {
					cell[i] = y
				}
			}
		}
	}
	cw, ch := stampBits*c/2, stampRows*c/2
	for py := range ch {
		clearTo(f.U[py*f.StrideUV:py*f.StrideUV+cw], 128)
		clearTo(f.V[py*f.StrideUV:py*f.StrideUV+cw], 128)
	}
}

// DecodeStamp reads the stamp from a luma plane of width x height pixels with the given
// stride (bytes per row).
func DecodeStamp(y []byte, stride, width, height int) (Stamp, error) {
	c := StampCell(width)
	if width < stampBits*c || height < stampRows*c {
		return Stamp{}, fmt.Errorf("sim: %dx%d picture is smaller than the %dx%d stamp", width, height, stampBits*c, stampRows*c)
	}
	if stride < width || len(y) < stride*(stampRows*c-1)+stampBits*c {
		return Stamp{}, fmt.Errorf("sim: luma plane of %d bytes with stride %d is too small for the stamp", len(y), stride)
	}
	var rows [stampRows]uint64
	for r := range rows {
		cy := r*c + c/2 - 1
		var v uint64
		for bit := range stampBits {
			cx := bit*c + c/2 - 1
			o := cy*stride + cx
			sum := int(y[o]) + int(y[o+1]) + int(y[o+stride]) + int(y[o+stride+1])
			v <<= 1
			if sum >= 4*128 {
				v |= 1
			}
		}
		rows[r] = v
	}
	if rows[0]^rows[1]^stampCheck != rows[2] {
		return Stamp{}, ErrStampCheck
	}
	return Stamp{Seq: rows[0], Captured: time.Unix(0, int64(rows[1]))}, nil
}

func clearTo(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}
