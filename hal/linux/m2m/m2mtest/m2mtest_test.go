package m2mtest

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"roombox/internal/v4l2uapi"
)

// ctx drives a File with raw ioctls, failing the test on unexpected errors.
type ctx struct {
	t     *testing.T
	f     *File
	buf   v4l2uapi.Buffer
	plane v4l2uapi.Plane
}

func newCtx(t *testing.T) *ctx {
	d, err := Encoder().Open("/dev/video11")
	if err != nil {
		t.Fatal(err)
	}
	return &ctx{t: t, f: d.(*File)}
}

func (c *ctx) do(req uint, arg unsafe.Pointer) error { return c.f.Ioctl(req, arg) }

func (c *ctx) must(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

func (c *ctx) want(err error, want unix.Errno, what string) {
	c.t.Helper()
	if !errors.Is(err, want) {
		c.t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func (c *ctx) fmt(typ, fourcc uint32) error {
	f := v4l2uapi.Format{Type: typ}
	*f.PixMP() = v4l2uapi.PixFormatMPlane{Width: 640, Height: 360, PixelFormat: fourcc, NumPlanes: 1}
	return c.do(v4l2uapi.SFmt, unsafe.Pointer(&f))
}

func (c *ctx) reqbufs(typ, n uint32) error {
	rb := v4l2uapi.RequestBuffers{Type: typ, Count: n, Memory: v4l2uapi.MemoryMMAP}
	return c.do(v4l2uapi.ReqBufs, unsafe.Pointer(&rb))
}

func (c *ctx) stream(on bool, typ uint32) error {
	t := int32(typ)
	if on {
		return c.do(v4l2uapi.StreamOn, unsafe.Pointer(&t))
	}
	return c.do(v4l2uapi.StreamOff, unsafe.Pointer(&t))
}

func (c *ctx) bufArg(typ uint32, i int) *v4l2uapi.Buffer {
	c.plane = v4l2uapi.Plane{}
	c.buf = v4l2uapi.Buffer{Type: typ, Index: uint32(i), Memory: v4l2uapi.MemoryMMAP, Length: 1}
	*(*unsafe.Pointer)(unsafe.Pointer(&c.buf.M)) = unsafe.Pointer(&c.plane)
	return &c.buf
}

func (c *ctx) qbuf(typ uint32, i int) error {
	return c.do(v4l2uapi.QBuf, unsafe.Pointer(c.bufArg(typ, i)))
}

func (c *ctx) dqbuf(typ uint32) error {
	return c.do(v4l2uapi.DQBuf, unsafe.Pointer(c.bufArg(typ, 0)))
}

func (c *ctx) stop() error {
	cmd := v4l2uapi.EncoderCommand{Cmd: v4l2uapi.EncCmdStop}
	return c.do(v4l2uapi.EncoderCmd, unsafe.Pointer(&cmd))
}

const (
	capT = v4l2uapi.BufTypeCaptureMPlane
	outT = v4l2uapi.BufTypeOutputMPlane
)

// TestModelRules checks the model against the rules of dev-encoder.rst and vb2 it claims.
func TestModelRules(t *testing.T) {
	c := newCtx(t)
	c.must(c.fmt(capT, v4l2uapi.PixFmtH264))
	c.must(c.fmt(outT, v4l2uapi.PixFmtYU12))
	c.want(c.stream(true, outT), unix.EINVAL, "STREAMON without buffers")
	c.must(c.reqbufs(outT, 2))
	c.want(c.fmt(capT, v4l2uapi.PixFmtH264), unix.EBUSY, "S_FMT CAPTURE with OUTPUT buffers")
	c.want(c.fmt(outT, v4l2uapi.PixFmtYU12), unix.EBUSY, "S_FMT OUTPUT with buffers")
	c.must(c.reqbufs(capT, 2))
	c.want(c.dqbuf(capT), unix.EINVAL, "DQBUF on a queue not streaming")
	c.must(c.qbuf(capT, 0))
	c.want(c.qbuf(capT, 0), unix.EINVAL, "QBUF of a queued buffer")
	c.want(c.qbuf(capT, 5), unix.EINVAL, "QBUF of a bad index")
	c.must(c.stop()) // not streaming: accepted, no drain
	if s := c.f.State(); s != StateInit {
		t.Fatalf("state %v after STOP in init", s)
	}
	c.must(c.stream(true, outT))
	c.must(c.stream(true, capT))
	if s := c.f.State(); s != StateEncoding {
		t.Fatalf("state %v with both queues streaming", s)
	}
	c.want(c.reqbufs(capT, 4), unix.EBUSY, "REQBUFS while streaming")
	c.want(c.dqbuf(capT), unix.EAGAIN, "DQBUF with nothing done")

	ctrl := v4l2uapi.Control{ID: v4l2uapi.CIDH264Profile, Value: 3}
	c.want(c.do(v4l2uapi.SCtrl, unsafe.Pointer(&ctrl)), unix.EINVAL, "masked menu item")
	ctrl = v4l2uapi.Control{ID: v4l2uapi.CIDH264Profile, Value: 7}
	c.want(c.do(v4l2uapi.SCtrl, unsafe.Pointer(&ctrl)), unix.ERANGE, "menu item out of range")
	ctrl = v4l2uapi.Control{ID: 0x00990000 | 0x1234}
	c.want(c.do(v4l2uapi.SCtrl, unsafe.Pointer(&ctrl)), unix.EINVAL, "unknown control")
	ctrl = v4l2uapi.Control{ID: v4l2uapi.CIDBitrate, Value: 99_000_000}
	c.must(c.do(v4l2uapi.SCtrl, unsafe.Pointer(&ctrl)))
	if ctrl.Value != 25_000_000 {
		t.Fatalf("bitrate clamped to %d", ctrl.Value)
	}

	// Drain with nothing queued on OUTPUT: an empty LAST at once, then EPIPE.
	c.must(c.stop())
	if s := c.f.State(); s != StateDrain {
		t.Fatalf("state %v after STOP", s)
	}
	rev, err := c.f.Poll(unix.POLLIN, 0)
	c.must(err)
	if rev != unix.POLLIN {
		t.Fatalf("poll %#x, want POLLIN for LAST", rev)
	}
	c.must(c.dqbuf(capT))
	if c.buf.Flags&v4l2uapi.BufFlagLast == 0 || c.plane.BytesUsed != 0 {
		t.Fatalf("drain: flags %#x used %d, want an empty LAST", c.buf.Flags, c.plane.BytesUsed)
	}
	if s := c.f.State(); s != StateStopped {
		t.Fatalf("state %v after LAST", s)
	}
	c.want(c.dqbuf(capT), unix.EPIPE, "DQBUF CAPTURE after LAST")
	start := v4l2uapi.EncoderCommand{Cmd: v4l2uapi.EncCmdStart}
	c.must(c.do(v4l2uapi.EncoderCmd, unsafe.Pointer(&start))) // a no-op on the bcm2835: still EPIPE
	c.want(c.dqbuf(capT), unix.EPIPE, "DQBUF CAPTURE after LAST and START")

	// Reset: STREAMOFF CAPTURE, STREAMON again starts a fresh stream.
	c.must(c.stream(false, capT))
	if s := c.f.State(); s != StateReset {
		t.Fatalf("state %v after STREAMOFF CAPTURE", s)
	}
	c.must(c.stream(true, capT))
	c.want(c.dqbuf(capT), unix.EAGAIN, "DQBUF after reset")
	if s := c.f.State(); s != StateEncoding {
		t.Fatalf("state %v after reset and STREAMON", s)
	}
}

// TestModelSeparateHeaders: in separate header mode SPS and PPS come in a buffer of their
// own before the first IDR; with no CAPTURE buffer queued when a drain ends, the next one
// queued comes back as LAST.
func TestModelSeparateHeaders(t *testing.T) {
	c := newCtx(t)
	c.must(c.fmt(capT, v4l2uapi.PixFmtH264))
	c.must(c.fmt(outT, v4l2uapi.PixFmtYU12))
	ctrl := v4l2uapi.Control{ID: v4l2uapi.CIDHeaderMode, Value: v4l2uapi.HeaderModeSeparate}
	c.must(c.do(v4l2uapi.SCtrl, unsafe.Pointer(&ctrl)))
	c.must(c.reqbufs(outT, 1))
	c.must(c.reqbufs(capT, 2))
	c.must(c.qbuf(capT, 0))
	c.must(c.qbuf(capT, 1))
	c.must(c.stream(true, outT))
	c.must(c.stream(true, capT))
	c.must(c.qbuf(outT, 0))
	if _, err := c.f.Poll(unix.POLLIN, 0); err != nil {
		t.Fatal(err)
	}
	var nals [][]byte
	for range 2 {
		c.must(c.dqbuf(capT))
		mem := c.f.q[capQ].bufs[c.buf.Index].mem[:c.plane.BytesUsed]
		nals = append(nals, []byte{mem[4] & 0x1f})
	}
	if nals[0][0] != 7 || nals[1][0] != 9 {
		t.Fatalf("first NAL of each buffer %v, want SPS then AUD", nals)
	}
	c.must(c.dqbuf(outT))
	c.must(c.stop())
	if _, err := c.f.Poll(unix.POLLIN, 0); err != nil {
		t.Fatal(err)
	}
	c.want(c.dqbuf(capT), unix.EAGAIN, "no CAPTURE buffer for LAST yet")
	c.must(c.qbuf(capT, 0))
	c.must(c.dqbuf(capT))
	if c.buf.Flags&v4l2uapi.BufFlagLast == 0 {
		t.Fatalf("flags %#x, want LAST", c.buf.Flags)
	}
}
