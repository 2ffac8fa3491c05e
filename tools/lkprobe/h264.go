package main

import "errors"

// NAL unit types lkprobe looks at (ITU-T H.264 table 7-1, RFC 6184 section 5.2).
const (
	nalIDR   = 5
	nalSPS   = 7
	nalSTAPA = 24
	nalFUA   = 28
)

// rtpNALs calls fn for each NAL unit an H.264 RTP payload (RFC 6184) starts or carries
// whole: a single NAL unit packet, each unit of a STAP-A, or the first fragment of an FU-A
// (fn gets the reconstructed header byte and what the fragment holds). Later fragments
// start no unit and are skipped; so are other packet types (MTAP, STAP-B, FU-B: not in
// the packetization mode LiveKit negotiates).
func rtpNALs(payload []byte, fn func(typ byte, nal []byte)) {
	if len(payload) < 1 {
		return
	}
	switch typ := payload[0] & 0x1f; {
	case typ >= 1 && typ <= 23:
		fn(typ, payload)
	case typ == nalSTAPA:
		for b := payload[1:]; len(b) >= 2; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				return
			}
			nal := b[2 : 2+n]
			fn(nal[0]&0x1f, nal)
			b = b[2+n:]
		}
	case typ == nalFUA:
		if len(payload) < 2 || payload[1]&0x80 == 0 { // not the start fragment
			return
		}
		nal := make([]byte, len(payload)-1)
		nal[0] = payload[0]&0xe0 | payload[1]&0x1f
		copy(nal[1:], payload[2:])
		fn(nal[0]&0x1f, nal)
	}
}

// spsInfo is what lkprobe reads from a sequence parameter set.
type spsInfo struct {
	Profile, Level byte // profile_idc, level_idc
	Width, Height  int  // the cropped picture size
}

var errShortSPS = errors.New("h264: SPS ends early")

// parseSPS reads the picture size from an SPS NAL unit (header byte included), following
// ITU-T H.264 section 7.3.2.1.1 up to frame_cropping. Only what the size depends on is
// kept; VUI is not read.
func parseSPS(nal []byte) (spsInfo, error) {
	if len(nal) < 4 || nal[0]&0x1f != nalSPS {
		return spsInfo{}, errors.New("h264: not an SPS")
	}
	r := bitReader{b: unescapeRBSP(nal[1:])}
	var s spsInfo
	s.Profile = byte(r.bits(8))
	r.bits(8) // constraint_set flags, reserved
	s.Level = byte(r.bits(8))
	r.ue() // seq_parameter_set_id
	chroma := uint(1)
	frameMbsOnly := uint(1)
	switch s.Profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = r.ue()
		if chroma == 3 {
			r.bits(1) // separate_colour_plane_flag
		}
		r.ue()              // bit_depth_luma_minus8
		r.ue()              // bit_depth_chroma_minus8
		r.bits(1)           // qpprime_y_zero_transform_bypass_flag
		if r.bits(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := 0; i < lists; i++ {
				if r.bits(1) == 1 { // seq_scaling_list_present_flag[i]
					size := 16
					if i >= 6 {
						size = 64
					}
					skipScalingList(&r, size)
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bits(1) // delta_pic_order_always_zero_flag
		r.se()    // offset_for_non_ref_pic
		r.se()    // offset_for_top_to_bottom_field
		n := r.ue()
		for i := uint(0); i < n && r.err == nil; i++ {
			r.se() // offset_for_ref_frame[i]
		}
	}
	r.ue()    // max_num_ref_frames
	r.bits(1) // gaps_in_frame_num_value_allowed_flag
	widthMbs := r.ue() + 1
	heightMapUnits := r.ue() + 1
	frameMbsOnly = r.bits(1)
	if frameMbsOnly == 0 {
		r.bits(1) // mb_adaptive_frame_field_flag
	}
	r.bits(1) // direct_8x8_inference_flag
	var cropL, cropR, cropT, cropB uint
	if r.bits(1) == 1 { // frame_cropping_flag
		cropL, cropR, cropT, cropB = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err != nil {
		return spsInfo{}, r.err
	}
	// Crop units (section 7.4.2.1.1): chroma samples for 4:2:0 and 4:2:2, luma otherwise.
	unitX, unitY := uint(1), 2-frameMbsOnly
	switch chroma {
	case 1:
		unitX, unitY = 2, 2*(2-frameMbsOnly)
	case 2:
		unitX = 2
	}
	s.Width = int(widthMbs*16 - unitX*(cropL+cropR))
	s.Height = int((2-frameMbsOnly)*heightMapUnits*16 - unitY*(cropT+cropB))
	if s.Width <= 0 || s.Height <= 0 {
		return spsInfo{}, errors.New("h264: SPS crops the whole picture")
	}
	return s, nil
}

// skipScalingList reads past a scaling_list() of size entries (section 7.3.2.1.1.1).
func skipScalingList(r *bitReader, size int) {
	last, next := 8, 8
	for j := 0; j < size && r.err == nil; j++ {
		if next != 0 {
			next = (last + int(r.se()) + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}

// unescapeRBSP drops the emulation prevention bytes (the 3 of each 00 00 03).
func unescapeRBSP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// bitReader reads big-endian bits and Exp-Golomb codes; past the end it sets err and
// returns zeros.
type bitReader struct {
	b   []byte
	pos int // in bits
	err error
}

func (r *bitReader) bits(n int) uint {
	var v uint
	for i := 0; i < n; i++ {
		if r.pos >= 8*len(r.b) {
			r.err = errShortSPS
			return 0
		}
		v = v<<1 | uint(r.b[r.pos/8]>>(7-r.pos%8)&1)
		r.pos++
	}
	return v
}

// ue is an unsigned Exp-Golomb code, ue(v).
func (r *bitReader) ue() uint {
	zeros := 0
	for r.bits(1) == 0 {
		if r.err != nil || zeros == 31 {
			r.err = errShortSPS
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + r.bits(zeros)
}

// se is a signed Exp-Golomb code, se(v).
func (r *bitReader) se() int {
	k := r.ue()
	if k%2 == 1 {
		return int(k+1) / 2
	}
	return -int(k / 2)
}
