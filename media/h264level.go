package media

// h264Levels are H.264's levels (ITU-T H.264 Table A-1) as level_idc, with the limits a
// picture size and rate must fit: macroblocks per frame (MaxFS) and per second (MaxMBPS).
// Level 1b is left out (baseline signals it through a constraint flag, and nothing we send
// is that small).
var h264Levels = []struct{ idc, maxFS, maxMBPS int }{
	{10, 99, 1_485},
	{11, 396, 3_000},
	{12, 396, 6_000},
	{13, 396, 11_880},
	{20, 396, 11_880},
	{21, 792, 19_800},
	{22, 1_620, 20_250},
	{30, 1_620, 40_500},
	{31, 3_600, 108_000},
	{32, 5_120, 216_000},
	{40, 8_192, 245_760},
	{41, 8_192, 245_760},
	{42, 8_704, 522_240},
	{50, 22_080, 589_824},
	{51, 36_864, 983_040},
	{52, 36_864, 2_073_600},
	{60, 139_264, 4_177_920},
	{61, 139_264, 8_912_896},
	{62, 139_264, 16_711_680},
}

// H264Level is the level_idc of the smallest H.264 level that holds width x height
// pictures at fps frames per second: 30 for 640x360@30, 31 for 1280x720@30, 40 for
// 1920x1080@30. Besides MaxFS and MaxMBPS, neither side may exceed sqrt(8*MaxFS)
// macroblocks (section A.3.1), which keeps very wide pictures from a small level. Bitrate
// is not a criterion: at the sizes simulcast sends, the level's ceiling (768 kbit/s at
// 1.3, 10 Mbit/s from 3.0) is above what a layer is given. 62 for what fits no level.
func H264Level(width, height, fps int) int {
	wmb, hmb := (width+15)/16, (height+15)/16
	fs := wmb * hmb
	for _, l := range h264Levels {
		if fs <= l.maxFS && fs*max(fps, 1) <= l.maxMBPS && wmb*wmb <= 8*l.maxFS && hmb*hmb <= 8*l.maxFS {
			return l.idc
		}
	}
	return h264Levels[len(h264Levels)-1].idc
}
