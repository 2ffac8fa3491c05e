package m2mtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"roombox/hal"
)

// AU is what Parse reads back from an access unit the model wrote.
type AU struct {
	NALs                        []byte // nal_unit_type of each NAL, in order
	IDR                         bool
	Profile, Constraints, Level byte // from the SPS, when there is one
	Frame                       int  // input frame number since the stream started
	TimestampUS                 int64
	Bitrate                     int
	CRC                         uint32 // of the picture the model read; compare FrameCRC
}

// HasSPS reports whether the access unit carries an SPS (type 7) and a PPS (8).
func (a AU) HasSPS() bool { return bytes.Contains(a.NALs, []byte{7, 8}) }

// Parse splits an Annex-B access unit written by the model into NAL units and decodes
// them; an error if it is not one.
func Parse(b []byte) (AU, error) {
	var a AU
	sc := []byte{0, 0, 0, 1}
	if !bytes.HasPrefix(b, sc) {
		return a, fmt.Errorf("m2mtest: access unit does not start with a start code: % x", b[:min(len(b), 8)])
	}
	slice := false
	for _, nal := range bytes.Split(b[4:], sc) {
		if len(nal) == 0 {
			return a, errors.New("m2mtest: empty NAL unit")
		}
		typ := nal[0] & 0x1f
		a.NALs = append(a.NALs, typ)
		switch typ {
		case 7:
			if len(nal) < 4 {
				return a, errors.New("m2mtest: short SPS")
			}
			a.Profile, a.Constraints, a.Level = nal[1], nal[2], nal[3]
		case 1, 5:
			p := unescape(nal[1:])
			if len(p) != 25 || string(p[:4]) != magic || p[24] != 0x80 {
				return a, fmt.Errorf("m2mtest: slice payload % x is not the model's", p)
			}
			a.IDR = typ == 5
			a.Frame = int(binary.BigEndian.Uint32(p[4:]))
			a.TimestampUS = int64(binary.BigEndian.Uint64(p[8:]))
			a.Bitrate = int(binary.BigEndian.Uint32(p[16:]))
			a.CRC = binary.BigEndian.Uint32(p[20:])
			slice = true
		}
	}
	if !slice {
		return a, errors.New("m2mtest: no slice in access unit")
	}
	return a, nil
}

func unescape(p []byte) []byte {
	out := make([]byte, 0, len(p))
	zeros := 0
	for _, c := range p {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// FrameCRC is the CRC-32 of f's visible picture in I420 order, what the model computes
// from the OUTPUT buffer it read: equal when the encoder copied the picture right.
func FrameCRC(f *hal.Frame) uint32 {
	var crc uint32
	for y := range f.Height {
		crc = crc32.Update(crc, crc32.IEEETable, f.Y[y*f.StrideY:][:f.Width])
	}
	for _, p := range [][]byte{f.U, f.V} {
		for y := range f.Height / 2 {
			crc = crc32.Update(crc, crc32.IEEETable, p[y*f.StrideUV:][:f.Width/2])
		}
	}
	return crc
}
