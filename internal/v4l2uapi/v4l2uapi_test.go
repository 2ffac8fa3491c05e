package v4l2uapi

import (
	"runtime"
	"testing"
	"unsafe"
)

// abi holds what gcc gives for the 6.1 uapi headers on each architecture (amd64 and arm64
// natively and with the aarch64 and armhf cross compilers; armv7 with 32-bit time_t, the
// ABI Go's linux/arm port uses). Run on arm64 and arm under qemu-user: `make test-cross`.
type abi struct {
	sizes map[string]uintptr
	offs  map[string]uintptr
	reqs  map[string]uint
}

var common = map[string]uintptr{
	"Capability": 104, "FmtDesc": 64, "RequestBuffers": 20, "StreamParm": 204,
	"Control": 8, "EncoderCommand": 40, "PixFormatMPlane": 192, "PlanePixFormat": 20,
	"Timecode": 16, "PixFormat": 48, "CaptureParm": 40, "QueryControl": 68, "FrmSizeEnum": 44,
}

var abis = map[string]abi{
	"amd64": abi64,
	"arm64": abi64,
	"arm": {
		sizes: map[string]uintptr{"Format": 204, "Buffer": 68, "Plane": 60},
		offs:  map[string]uintptr{"Format.Pix": 4, "Buffer.Timestamp": 20, "Buffer.M": 52, "Buffer.Length": 56, "Plane.DataOffset": 12},
		reqs: map[string]uint{
			"GFmt": 0xc0cc5604, "SFmt": 0xc0cc5605, "QueryBuf": 0xc0445609, "QBuf": 0xc044560f, "DQBuf": 0xc0445611,
		},
	},
}

var abi64 = abi{
	sizes: map[string]uintptr{"Format": 208, "Buffer": 88, "Plane": 64},
	offs:  map[string]uintptr{"Format.Pix": 8, "Buffer.Timestamp": 24, "Buffer.M": 64, "Buffer.Length": 72, "Plane.DataOffset": 16},
	reqs: map[string]uint{
		"GFmt": 0xc0d05604, "SFmt": 0xc0d05605, "QueryBuf": 0xc0585609, "QBuf": 0xc058560f, "DQBuf": 0xc0585611,
	},
}

// The same on every architecture.
var commonReqs = map[string]uint{
	"QueryCap": 0x80685600, "EnumFmt": 0xc0405602, "ReqBufs": 0xc0145608,
	"StreamOn": 0x40045612, "StreamOff": 0x40045613, "SParm": 0xc0cc5616,
	"SCtrl": 0xc008561c, "EncoderCmd": 0xc028564d, "QueryCtrl": 0xc0445624, "EnumFrameSizes": 0xc02c564a,
}

func TestLayout(t *testing.T) {
	want, ok := abis[runtime.GOARCH]
	if !ok {
		t.Skipf("no reference layout for GOARCH=%s", runtime.GOARCH)
	}
	var (
		f Format
		b Buffer
		p Plane
	)
	got := map[string]uintptr{
		"Capability": unsafe.Sizeof(Capability{}), "FmtDesc": unsafe.Sizeof(FmtDesc{}),
		"RequestBuffers": unsafe.Sizeof(RequestBuffers{}), "StreamParm": unsafe.Sizeof(StreamParm{}),
		"Control": unsafe.Sizeof(Control{}), "EncoderCommand": unsafe.Sizeof(EncoderCommand{}),
		"PixFormatMPlane": unsafe.Sizeof(PixFormatMPlane{}), "PlanePixFormat": unsafe.Sizeof(PlanePixFormat{}),
		"Timecode": unsafe.Sizeof(Timecode{}), "PixFormat": unsafe.Sizeof(PixFormat{}),
		"CaptureParm": unsafe.Sizeof(CaptureParm{}), "QueryControl": unsafe.Sizeof(QueryControl{}),
		"FrmSizeEnum": unsafe.Sizeof(FrmSizeEnum{}),
		"Format":      unsafe.Sizeof(f), "Buffer": unsafe.Sizeof(b), "Plane": unsafe.Sizeof(p),
	}
	for name, size := range common {
		if got[name] != size {
			t.Errorf("sizeof %s = %d, want %d", name, got[name], size)
		}
	}
	for name, size := range want.sizes {
		if got[name] != size {
			t.Errorf("sizeof %s = %d, want %d on %s", name, got[name], size, runtime.GOARCH)
		}
	}
	offs := map[string]uintptr{
		"Format.Pix": unsafe.Offsetof(f.fmt), "Buffer.Timestamp": unsafe.Offsetof(b.Timestamp),
		"Buffer.M": unsafe.Offsetof(b.M), "Buffer.Length": unsafe.Offsetof(b.Length),
		"Plane.DataOffset": unsafe.Offsetof(p.DataOffset),
	}
	for name, off := range want.offs {
		if offs[name] != off {
			t.Errorf("offsetof %s = %d, want %d on %s", name, offs[name], off, runtime.GOARCH)
		}
	}
	var sp StreamParm
	for name, tpf := range map[string]*Fract{"output": &sp.Output().TimePerFrame, "capture": &sp.Capture().TimePerFrame} {
		if o := uintptr(unsafe.Pointer(tpf)) - uintptr(unsafe.Pointer(&sp)); o != 12 {
			t.Errorf("offsetof StreamParm.parm.%s.timeperframe = %d, want 12", name, o)
		}
	}
	if o := uintptr(unsafe.Pointer(&f.Pix().BytesPerLine)) - uintptr(unsafe.Pointer(&f)); o != want.offs["Format.Pix"]+16 {
		t.Errorf("offsetof Format.fmt.pix.bytesperline = %d, want %d", o, want.offs["Format.Pix"]+16)
	}
	if o := unsafe.Offsetof(FrmSizeEnum{}.Width); o != 12 {
		t.Errorf("offsetof FrmSizeEnum.discrete = %d, want 12", o)
	}
	if o := unsafe.Offsetof(PixFormatMPlane{}.NumPlanes); o != 180 {
		t.Errorf("offsetof PixFormatMPlane.NumPlanes = %d, want 180", o)
	}
	reqs := map[string]uint{
		"QueryCap": QueryCap, "EnumFmt": EnumFmt, "SFmt": SFmt, "ReqBufs": ReqBufs,
		"QueryBuf": QueryBuf, "QBuf": QBuf, "DQBuf": DQBuf, "StreamOn": StreamOn,
		"StreamOff": StreamOff, "SParm": SParm, "SCtrl": SCtrl, "EncoderCmd": EncoderCmd,
		"GFmt": GFmt, "QueryCtrl": QueryCtrl, "EnumFrameSizes": EnumFrameSizes,
	}
	for _, m := range []map[string]uint{commonReqs, want.reqs} {
		for name, req := range m {
			if reqs[name] != req {
				t.Errorf("%s = %#x, want %#x on %s", name, reqs[name], req, runtime.GOARCH)
			}
		}
	}
	if len(reqs) != len(commonReqs)+len(want.reqs) {
		t.Errorf("%d request numbers, %d checked", len(reqs), len(commonReqs)+len(want.reqs))
	}
}

func TestFourCC(t *testing.T) {
	for _, c := range []struct {
		v    uint32
		want string
	}{{PixFmtH264, "H264"}, {PixFmtYU12, "YU12"}, {PixFmtNV12, "NV12"}, {PixFmtYUYV, "YUYV"}} {
		b := []byte{byte(c.v), byte(c.v >> 8), byte(c.v >> 16), byte(c.v >> 24)}
		if string(b) != c.want {
			t.Errorf("%#x = %q, want %q", c.v, b, c.want)
		}
	}
	if PixFmtH264 != 0x34363248 {
		t.Errorf("H264 = %#x", PixFmtH264)
	}
}
