// Package v4l2uapi lays out the few V4L2 uapi structures (include/uapi/linux/videodev2.h)
// roombox uses, for linux/amd64, arm64 and arm (armv7, time32): those of a stateful
// memory-to-memory encoder (hal/linux/m2m), the two queries hal/linux/v4l2 makes beside
// blackjack/webcam, and single-planar mmap capture (the VM lab's raw check of vivid).
//
// One set of Go types serves every architecture: the C layouts differ only where a field
// is pointer- or long-sized (uintptr here) or holds a struct timeval (unix.Timeval, which
// is two int32 on arm), and Go aligns those the way the C ABI does. Pointer-carrying
// unions are uintptr: the caller keeps the pointee alive (runtime.KeepAlive) across the
// ioctl. Request numbers are computed from the Go sizes, so a layout mistake changes the
// number as well; v4l2_test.go pins both to the values the kernel headers give per arch.
package v4l2uapi

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Buffer types (enum v4l2_buf_type).
const (
	BufTypeVideoCapture  = 1
	BufTypeCaptureMPlane = 9  // encoded bitstream, driver to user
	BufTypeOutputMPlane  = 10 // raw pictures, user to driver
)

// MemoryMMAP is V4L2_MEMORY_MMAP.
const MemoryMMAP = 1

// FieldNone is V4L2_FIELD_NONE (progressive).
const FieldNone = 1

// Capability bits (v4l2_capability.capabilities / device_caps).
const (
	CapVideoCapture   = 0x00000001
	CapVideoM2MMPlane = 0x00004000
	CapStreaming      = 0x04000000
	CapDeviceCaps     = 0x80000000
)

// Pixel formats (fourcc, little-endian).
const (
	PixFmtH264 = 'H' | '2'<<8 | '6'<<16 | '4'<<24
	PixFmtYU12 = 'Y' | 'U'<<8 | '1'<<16 | '2'<<24 // I420: Y, then U, then V planes
	PixFmtNV12 = 'N' | 'V'<<8 | '1'<<16 | '2'<<24 // Y, then interleaved UV
	PixFmtYUYV = 'Y' | 'U'<<8 | 'Y'<<16 | 'V'<<24 // packed 4:2:2
)

// FrmSizeTypeDiscrete is V4L2_FRMSIZE_TYPE_DISCRETE.
const FrmSizeTypeDiscrete = 1

// CtrlFlagNextCtrl is V4L2_CTRL_FLAG_NEXT_CTRL: QUERYCTRL returns the control after the ID.
const CtrlFlagNextCtrl = 0x80000000

// FmtFlagCompressed is V4L2_FMT_FLAG_COMPRESSED.
const FmtFlagCompressed = 0x0001

// Buffer flags (v4l2_buffer.flags).
const (
	BufFlagQueued        = 0x00000002
	BufFlagDone          = 0x00000004
	BufFlagKeyframe      = 0x00000008
	BufFlagPFrame        = 0x00000010
	BufFlagError         = 0x00000040
	BufFlagTimestampCopy = 0x00004000
	BufFlagLast          = 0x00100000
)

// Encoder commands (VIDIOC_ENCODER_CMD).
const (
	EncCmdStart = 0
	EncCmdStop  = 1
)

// Codec controls (v4l2-controls.h, class V4L2_CTRL_CLASS_CODEC 0x990000).
const (
	CIDBitrateMode       = 0x009909ce
	CIDBitrate           = 0x009909cf
	CIDHeaderMode        = 0x009909d8
	CIDRepeatSeqHeader   = 0x009909e2
	CIDForceKeyFrame     = 0x009909e5
	CIDH264IPeriod       = 0x00990a66
	CIDH264Level         = 0x00990a67
	CIDH264Profile       = 0x00990a6b
	BitrateModeVBR       = 0
	BitrateModeCBR       = 1
	HeaderModeSeparate   = 0
	HeaderModeJoined     = 1 // SPS and PPS in the same buffer as the IDR that follows
	ProfileBaseline      = 0
	ProfileConstrainedBP = 1
	ProfileMain          = 2
	ProfileHigh          = 4
)

// H.264 level menu values (enum v4l2_mpeg_video_h264_level).
const (
	Level3_1 = 9
	Level3_2 = 10
	Level4_0 = 11
	Level4_1 = 12
	Level4_2 = 13
)

// Capability is struct v4l2_capability.
type Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	_            [3]uint32
}

// FmtDesc is struct v4l2_fmtdesc.
type FmtDesc struct {
	Index       uint32
	Type        uint32
	Flags       uint32
	Description [32]byte
	PixelFormat uint32
	MbusCode    uint32
	_           [3]uint32
}

// PixFormat is struct v4l2_pix_format (single-planar).
type PixFormat struct {
	Width, Height, PixelFormat, Field, BytesPerLine, SizeImage uint32
	Colorspace, Priv, Flags, YCbCrEnc, Quantization, XferFunc  uint32
}

// PlanePixFormat is struct v4l2_plane_pix_format.
type PlanePixFormat struct {
	SizeImage    uint32
	BytesPerLine uint32
	_            [6]uint16
}

// PixFormatMPlane is struct v4l2_pix_format_mplane.
type PixFormatMPlane struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	Colorspace   uint32
	PlaneFmt     [8]PlanePixFormat
	NumPlanes    uint8
	Flags        uint8
	YCbCrEnc     uint8
	Quantization uint8
	XferFunc     uint8
	_            [7]uint8
}

// Format is struct v4l2_format. The union fmt is 200 bytes and pointer-aligned
// (v4l2_window holds pointers): at offset 8 on 64-bit, 4 on arm.
type Format struct {
	Type uint32
	_    [0]uintptr
	fmt  [200]byte
}

// Pix is the union read as pix, for single-planar types.
func (f *Format) Pix() *PixFormat { return (*PixFormat)(unsafe.Pointer(&f.fmt)) }

// PixMP is the union read as pix_mp, for multi-planar types.
func (f *Format) PixMP() *PixFormatMPlane { return (*PixFormatMPlane)(unsafe.Pointer(&f.fmt)) }

// RequestBuffers is struct v4l2_requestbuffers.
type RequestBuffers struct {
	Count        uint32
	Type         uint32
	Memory       uint32
	Capabilities uint32
	Flags        uint8
	_            [3]uint8
}

// Timecode is struct v4l2_timecode.
type Timecode struct {
	Type     uint32
	Flags    uint32
	Frames   uint8
	Seconds  uint8
	Minutes  uint8
	Hours    uint8
	Userbits [4]uint8
}

// Buffer is struct v4l2_buffer. M is the union m: for multi-planar types a pointer to
// Length Plane structs, for single-planar MMAP the offset (see MemOffset).
type Buffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	Timestamp unix.Timeval
	Timecode  Timecode
	Sequence  uint32
	Memory    uint32
	M         uintptr
	Length    uint32
	_         uint32
	RequestFD int32
}

// MemOffset reads m.offset, a single-planar MMAP buffer's offset (the low 32 bits on every
// little-endian arch).
func (b *Buffer) MemOffset() uint32 { return uint32(b.M) }

// Plane is struct v4l2_plane. M is the union m; for MMAP it is mem_offset (the low 32
// bits on every little-endian arch).
type Plane struct {
	BytesUsed  uint32
	Length     uint32
	M          uintptr
	DataOffset uint32
	_          [11]uint32
}

// MemOffset reads m.mem_offset.
func (p *Plane) MemOffset() uint32 { return uint32(p.M) }

// Fract is struct v4l2_fract.
type Fract struct {
	Numerator   uint32
	Denominator uint32
}

// OutputParm is struct v4l2_outputparm.
type OutputParm struct {
	Capability   uint32
	OutputMode   uint32
	TimePerFrame Fract
	ExtendedMode uint32
	WriteBuffers uint32
	_            [4]uint32
}

// CaptureParm is struct v4l2_captureparm.
type CaptureParm struct {
	Capability   uint32
	CaptureMode  uint32
	TimePerFrame Fract
	ExtendedMode uint32
	ReadBuffers  uint32
	_            [4]uint32
}

// StreamParm is struct v4l2_streamparm; its union parm holds no pointers.
type StreamParm struct {
	Type uint32
	parm [200]byte
}

// Capture is the union read as capture, for capture types.
func (p *StreamParm) Capture() *CaptureParm { return (*CaptureParm)(unsafe.Pointer(&p.parm)) }

// Output is the union read as output, for output types.
func (p *StreamParm) Output() *OutputParm { return (*OutputParm)(unsafe.Pointer(&p.parm)) }

// Control is struct v4l2_control.
type Control struct {
	ID    uint32
	Value int32
}

// QueryControl is struct v4l2_queryctrl.
type QueryControl struct {
	ID, Type                       uint32
	Name                           [32]byte
	Min, Max, Step, Default, Flags int32
	_                              [2]uint32
}

// FrmSizeEnum is struct v4l2_frmsizeenum. Width and Height begin the union: a discrete
// size, or for stepwise types min_width and max_width.
type FrmSizeEnum struct {
	Index, PixelFormat, Type uint32
	Width, Height            uint32
	_                        [4]uint32 // the rest of the union (struct v4l2_frmsize_stepwise)
	_                        [2]uint32
}

// EncoderCommand is struct v4l2_encoder_cmd.
type EncoderCommand struct {
	Cmd   uint32
	Flags uint32
	Data  [8]uint32
}

// Request numbers: _IOC(dir, 'V', nr, size) from asm-generic/ioctl.h, the same encoding
// on x86, arm and arm64.
const (
	iocW = 1 << 30
	iocR = 2 << 30
	iocV = 'V' << 8

	QueryCap       = iocR | iocV | uint(unsafe.Sizeof(Capability{}))<<16 // nr 0
	EnumFmt        = iocR | iocW | iocV | 2 | uint(unsafe.Sizeof(FmtDesc{}))<<16
	GFmt           = iocR | iocW | iocV | 4 | uint(unsafe.Sizeof(Format{}))<<16
	SFmt           = iocR | iocW | iocV | 5 | uint(unsafe.Sizeof(Format{}))<<16
	ReqBufs        = iocR | iocW | iocV | 8 | uint(unsafe.Sizeof(RequestBuffers{}))<<16
	QueryBuf       = iocR | iocW | iocV | 9 | uint(unsafe.Sizeof(Buffer{}))<<16
	QBuf           = iocR | iocW | iocV | 15 | uint(unsafe.Sizeof(Buffer{}))<<16
	DQBuf          = iocR | iocW | iocV | 17 | uint(unsafe.Sizeof(Buffer{}))<<16
	StreamOn       = iocW | iocV | 18 | uint(unsafe.Sizeof(int32(0)))<<16
	StreamOff      = iocW | iocV | 19 | uint(unsafe.Sizeof(int32(0)))<<16
	SParm          = iocR | iocW | iocV | 22 | uint(unsafe.Sizeof(StreamParm{}))<<16
	SCtrl          = iocR | iocW | iocV | 28 | uint(unsafe.Sizeof(Control{}))<<16
	QueryCtrl      = iocR | iocW | iocV | 36 | uint(unsafe.Sizeof(QueryControl{}))<<16
	EnumFrameSizes = iocR | iocW | iocV | 74 | uint(unsafe.Sizeof(FrmSizeEnum{}))<<16
	EncoderCmd     = iocR | iocW | iocV | 77 | uint(unsafe.Sizeof(EncoderCommand{}))<<16
)

// CString returns a NUL-terminated fixed-size field as a string.
func CString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
