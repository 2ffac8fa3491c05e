package m2mtest

import (
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"roombox/internal/v4l2uapi"
)

var ctrlNames = map[uint32]string{
	v4l2uapi.CIDBitrateMode: "BITRATE_MODE", v4l2uapi.CIDBitrate: "BITRATE", v4l2uapi.CIDHeaderMode: "HEADER_MODE",
	v4l2uapi.CIDRepeatSeqHeader: "REPEAT_SEQ_HEADER", v4l2uapi.CIDForceKeyFrame: "FORCE_KEY_FRAME",
	v4l2uapi.CIDH264IPeriod: "H264_I_PERIOD", v4l2uapi.CIDH264Level: "H264_LEVEL", v4l2uapi.CIDH264Profile: "H264_PROFILE",
}

// describe renders a call for the trace: its name, the arguments the driver saw and, for
// calls that return data, what it returned; " = ERRNO" when it failed.
func describe(op string, req uint, arg unsafe.Pointer, err error) string {
	var s string
	switch req {
	case v4l2uapi.EnumFmt:
		s = fmt.Sprintf("%s %d", op, (*v4l2uapi.FmtDesc)(arg).Index)
	case v4l2uapi.SFmt:
		p := (*v4l2uapi.Format)(arg).PixMP()
		s = fmt.Sprintf("%s %s %dx%d bpl=%d size=%d", op, fourcc(p.PixelFormat), p.Width, p.Height,
			p.PlaneFmt[0].BytesPerLine, p.PlaneFmt[0].SizeImage)
	case v4l2uapi.SParm:
		p := (*v4l2uapi.StreamParm)(arg)
		s = fmt.Sprintf("%s %s %d/%d", op, qname(p.Type), p.Output().TimePerFrame.Numerator, p.Output().TimePerFrame.Denominator)
	case v4l2uapi.SCtrl:
		c := (*v4l2uapi.Control)(arg)
		name, ok := ctrlNames[c.ID]
		if !ok {
			name = fmt.Sprintf("%#x", c.ID)
		}
		s = fmt.Sprintf("%s %s=%d", op, name, c.Value)
	case v4l2uapi.ReqBufs:
		s = fmt.Sprintf("%s %d", op, (*v4l2uapi.RequestBuffers)(arg).Count)
	case v4l2uapi.QueryBuf, v4l2uapi.QBuf, v4l2uapi.DQBuf:
		s = describeBuf(op, req, (*v4l2uapi.Buffer)(arg), err)
	case v4l2uapi.EncoderCmd:
		s = fmt.Sprintf("%s %d", op, (*v4l2uapi.EncoderCommand)(arg).Cmd)
		switch (*v4l2uapi.EncoderCommand)(arg).Cmd {
		case v4l2uapi.EncCmdStop:
			s = op + " STOP"
		case v4l2uapi.EncCmdStart:
			s = op + " START"
		}
	default:
		s = op
	}
	if err != nil {
		if e, ok := err.(unix.Errno); ok {
			return s + " = " + unix.ErrnoName(e)
		}
		return s + " = " + err.Error()
	}
	return s
}

func describeBuf(op string, req uint, b *v4l2uapi.Buffer, err error) string {
	var p *v4l2uapi.Plane
	if b.M != 0 {
		p = *(**v4l2uapi.Plane)(unsafe.Pointer(&b.M))
	}
	switch {
	case req == v4l2uapi.DQBuf && err != nil:
		return op
	case req == v4l2uapi.DQBuf:
		var flags []string
		for _, f := range []struct {
			bit  uint32
			name string
		}{{v4l2uapi.BufFlagKeyframe, "KEYFRAME"}, {v4l2uapi.BufFlagError, "ERROR"}, {v4l2uapi.BufFlagLast, "LAST"}} {
			if b.Flags&f.bit != 0 {
				flags = append(flags, f.name)
			}
		}
		s := fmt.Sprintf("%s -> %d ts=%d", op, b.Index, b.Timestamp.Nano()/1000)
		if b.Type == v4l2uapi.BufTypeCaptureMPlane && p != nil {
			s += fmt.Sprintf(" used=%d", p.BytesUsed)
		}
		if len(flags) > 0 {
			s += " " + strings.Join(flags, "|")
		}
		return s
	case req == v4l2uapi.QBuf && b.Type == v4l2uapi.BufTypeOutputMPlane && p != nil:
		return fmt.Sprintf("%s %d used=%d ts=%d", op, b.Index, p.BytesUsed, b.Timestamp.Nano()/1000)
	}
	return fmt.Sprintf("%s %d", op, b.Index)
}

func fourcc(v uint32) string {
	return string([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}
