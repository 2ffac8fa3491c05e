package v4l2

import (
	"testing"
	"unsafe"
)

// The ioctl numbers encode the struct sizes, which differ between 64-bit and 32-bit ARM
// (videodev2.h; checked against the 6.1 uapi headers with gcc for amd64, arm64 and armhf).
func TestIoctlLayout(t *testing.T) {
	fmtSize, gfmt := uintptr(208), uintptr(0xc0d05604)
	if unsafe.Sizeof(uintptr(0)) == 4 {
		fmtSize, gfmt = 204, 0xc0cc5604
	}
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof v4l2_format", unsafe.Sizeof(v4l2Format{}), fmtSize},
		{"VIDIOC_G_FMT", vidiocGFmt, gfmt},
		{"VIDIOC_QUERYCAP", vidiocQuerycap, 0x80685600},
		{"VIDIOC_QUERYCTRL", vidiocQueryctrl, 0xc0445624},
		{"VIDIOC_S_CTRL", vidiocSCtrl, 0xc008561c},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}
