package media

import "testing"

func TestH264Level(t *testing.T) {
	for _, c := range []struct{ w, h, fps, want int }{
		{1280, 720, 30, 31},
		{1920, 1080, 30, 40},
		{1920, 1080, 60, 42},
		{640, 360, 30, 30},
		{640, 360, 15, 22},
		{320, 180, 30, 13},
		{160, 90, 30, 11}, // 60 macroblocks, 1800 a second: above level 1's 1485
		{160, 90, 20, 10},
		{1280, 720, 60, 32},
		{3840, 2160, 30, 51},
		{2048, 16, 30, 31}, // 128 macroblocks wide: sqrt(8*MaxFS) needs MaxFS 2048 at least
		{8192, 8192, 120, 62},
	} {
		if got := H264Level(c.w, c.h, c.fps); got != c.want {
			t.Errorf("H264Level(%d, %d, %d) = %d, want %d", c.w, c.h, c.fps, got, c.want)
		}
	}
}
