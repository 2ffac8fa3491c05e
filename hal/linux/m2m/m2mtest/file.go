package m2mtest

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"roombox/internal/v4l2uapi"
)

// State is an encoding context's state (dev-encoder.rst, "State machine").
type State int

// States.
const (
	StateInit     State = 1 // formats, controls, buffers being set up
	StateEncoding State = 2 // both queues streaming
	StateDrain    State = 3 // ENCODER_CMD STOP: finishing the OUTPUT queued before it
	StateStopped  State = 4 // LAST sent; OUTPUT accepted but not processed
	StateReset    State = 5 // STREAMOFF CAPTURE
)

func (s State) String() string {
	switch s {
	case StateInit:
		return "init"
	case StateEncoding:
		return "encoding"
	case StateDrain:
		return "drain"
	case StateStopped:
		return "stopped"
	case StateReset:
		return "reset"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

const (
	capQ = 0 // index of the CAPTURE (bitstream) queue in File.q
	outQ = 1 // the OUTPUT (picture) queue

	// The bcm2835's bitstream buffer sizes, by picture size.
	capSizeSmall = 512 << 10 // up to 1280x720
	capSizeLarge = 768 << 10

	captureOffsetBase = 1 << 30 // mem_offset of CAPTURE buffers (DST_QUEUE_OFF_BASE)
	pageSize          = 4096
)

type buffer struct {
	mem       []byte
	offset    uint32
	owned     bool // queued, or done and not yet dequeued: the driver's
	bytesUsed uint32
	flags     uint32
	ts        unix.Timeval
	seq       uint32
}

type queue struct {
	typ                   uint32
	fourcc, width, height uint32
	bytesPerLine, sizeImg uint32
	bufs                  []buffer
	pending, done         []int // queued in QBUF order; done in completion order
	streaming             bool
	seq                   uint32
}

// File is one open of a node: an encoding context.
type File struct {
	n      *Node
	closed bool
	q      [2]queue
	state  State

	bitrateMode, bitrate, iPeriod, profile, level, headerMode, repeatSeq int32
	forceKey                                                             bool
	fps                                                                  v4l2uapi.Fract

	frames      int  // input frames taken since the stream started
	sinceKey    int  // frames since the last key frame, counting it
	headersSent bool // SPS and PPS went out since the stream started
	drainLeft   int  // OUTPUT buffers still to encode before LAST
	lastPending bool // the drain ended with no CAPTURE buffer queued for LAST
	lastTaken   bool // the LAST buffer was dequeued: DQBUF CAPTURE fails with EPIPE
	scratch     []byte
}

func newFile(n *Node) *File {
	f := &File{
		n: n, state: StateInit,
		bitrate: 10_000_000, iPeriod: 60, profile: v4l2uapi.ProfileHigh, level: v4l2uapi.Level4_0,
		headerMode: v4l2uapi.HeaderModeJoined, fps: v4l2uapi.Fract{Numerator: 1, Denominator: 30},
	}
	f.q[capQ] = queue{typ: v4l2uapi.BufTypeCaptureMPlane, fourcc: v4l2uapi.PixFmtH264, width: 1920, height: 1088}
	f.q[outQ] = queue{typ: v4l2uapi.BufTypeOutputMPlane, fourcc: v4l2uapi.PixFmtYU12, width: 1920, height: 1088}
	f.setFormat(&f.q[capQ], v4l2uapi.PixFmtH264, 1920, 1088, 0)
	f.setFormat(&f.q[outQ], v4l2uapi.PixFmtYU12, 1920, 1088, 0)
	return f
}

// State returns the context's state.
func (f *File) State() State {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return f.state
}

// Control returns a control's current value.
func (f *File) Control(id uint32) int32 {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if p := f.ctrl(id); p != nil {
		return *p
	}
	return 0
}

func qname(typ uint32) string {
	switch typ {
	case v4l2uapi.BufTypeCaptureMPlane:
		return "CAPTURE"
	case v4l2uapi.BufTypeOutputMPlane:
		return "OUTPUT"
	}
	return fmt.Sprintf("type%d", typ)
}

// queueOf returns the queue of a buffer type, nil for any other type.
func (f *File) queueOf(typ uint32) *queue {
	switch typ {
	case v4l2uapi.BufTypeCaptureMPlane:
		return &f.q[capQ]
	case v4l2uapi.BufTypeOutputMPlane:
		return &f.q[outQ]
	}
	return nil
}

// opName is a call's name for faults and the trace: constant strings, so naming a call
// allocates nothing.
func opName(req uint, arg unsafe.Pointer) string {
	var typ uint32
	switch req {
	case v4l2uapi.EnumFmt:
		typ = (*v4l2uapi.FmtDesc)(arg).Type
	case v4l2uapi.SFmt:
		typ = (*v4l2uapi.Format)(arg).Type
	case v4l2uapi.ReqBufs:
		typ = (*v4l2uapi.RequestBuffers)(arg).Type
	case v4l2uapi.QueryBuf, v4l2uapi.QBuf, v4l2uapi.DQBuf:
		typ = (*v4l2uapi.Buffer)(arg).Type
	case v4l2uapi.StreamOn, v4l2uapi.StreamOff:
		typ = uint32(*(*int32)(arg))
	}
	out := typ == v4l2uapi.BufTypeOutputMPlane
	pick := func(c, o string) string {
		if out {
			return o
		}
		return c
	}
	switch req {
	case v4l2uapi.QueryCap:
		return "QUERYCAP"
	case v4l2uapi.EnumFmt:
		return pick("ENUM_FMT CAPTURE", "ENUM_FMT OUTPUT")
	case v4l2uapi.SFmt:
		return pick("S_FMT CAPTURE", "S_FMT OUTPUT")
	case v4l2uapi.SParm:
		return "S_PARM"
	case v4l2uapi.SCtrl:
		return "S_CTRL"
	case v4l2uapi.ReqBufs:
		return pick("REQBUFS CAPTURE", "REQBUFS OUTPUT")
	case v4l2uapi.QueryBuf:
		return pick("QUERYBUF CAPTURE", "QUERYBUF OUTPUT")
	case v4l2uapi.QBuf:
		return pick("QBUF CAPTURE", "QBUF OUTPUT")
	case v4l2uapi.DQBuf:
		return pick("DQBUF CAPTURE", "DQBUF OUTPUT")
	case v4l2uapi.StreamOn:
		return pick("STREAMON CAPTURE", "STREAMON OUTPUT")
	case v4l2uapi.StreamOff:
		return pick("STREAMOFF CAPTURE", "STREAMOFF OUTPUT")
	case v4l2uapi.EncoderCmd:
		return "ENCODER_CMD"
	}
	return "ioctl"
}

// Ioctl implements m2m.Device.
func (f *File) Ioctl(req uint, arg unsafe.Pointer) error {
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if f.closed {
		return unix.EBADF
	}
	if arg == nil {
		return unix.EFAULT
	}
	op := opName(req, arg)
	err := n.fault(op)
	if err == nil {
		err = f.ioctl(req, arg)
	}
	if n.tracing {
		n.record(describe(op, req, arg, err))
	}
	return err
}

func (f *File) ioctl(req uint, arg unsafe.Pointer) error {
	switch req {
	case v4l2uapi.QueryCap:
		c := (*v4l2uapi.Capability)(arg)
		*c = v4l2uapi.Capability{Capabilities: f.n.Caps | v4l2uapi.CapDeviceCaps, DeviceCaps: f.n.Caps, Version: 6<<16 | 1<<8}
		copy(c.Driver[:], f.n.Driver)
		copy(c.Card[:], f.n.Card)
		copy(c.BusInfo[:], f.n.BusInfo)
		return nil
	case v4l2uapi.EnumFmt:
		return f.enumFmt((*v4l2uapi.FmtDesc)(arg))
	case v4l2uapi.SFmt:
		return f.sFmt((*v4l2uapi.Format)(arg))
	case v4l2uapi.SParm:
		p := (*v4l2uapi.StreamParm)(arg)
		tpf := p.Output().TimePerFrame
		if p.Type != v4l2uapi.BufTypeOutputMPlane || tpf.Numerator == 0 || tpf.Denominator == 0 {
			return unix.EINVAL
		}
		f.fps = tpf
		p.Output().Capability = 0x1000 // V4L2_CAP_TIMEPERFRAME
		return nil
	case v4l2uapi.SCtrl:
		return f.sCtrl((*v4l2uapi.Control)(arg))
	case v4l2uapi.ReqBufs:
		return f.reqBufs((*v4l2uapi.RequestBuffers)(arg))
	case v4l2uapi.QueryBuf:
		return f.queryBuf((*v4l2uapi.Buffer)(arg))
	case v4l2uapi.QBuf:
		return f.qBuf((*v4l2uapi.Buffer)(arg))
	case v4l2uapi.DQBuf:
		return f.dqBuf((*v4l2uapi.Buffer)(arg))
	case v4l2uapi.StreamOn:
		return f.streamOn(uint32(*(*int32)(arg)))
	case v4l2uapi.StreamOff:
		return f.streamOff(uint32(*(*int32)(arg)))
	case v4l2uapi.EncoderCmd:
		return f.encoderCmd((*v4l2uapi.EncoderCommand)(arg))
	}
	return unix.ENOTTY
}

func (f *File) enumFmt(d *v4l2uapi.FmtDesc) error {
	var list []uint32
	switch d.Type {
	case v4l2uapi.BufTypeCaptureMPlane:
		list = f.n.CaptureFormats
	case v4l2uapi.BufTypeOutputMPlane:
		list = f.n.OutputFormats
	default:
		return unix.EINVAL
	}
	if f.n.Caps&v4l2uapi.CapVideoM2MMPlane == 0 || int(d.Index) >= len(list) {
		return unix.EINVAL
	}
	d.PixelFormat, d.Flags = list[d.Index], 0
	if d.PixelFormat == v4l2uapi.PixFmtH264 {
		d.Flags = v4l2uapi.FmtFlagCompressed
	}
	return nil
}

func (f *File) sFmt(fm *v4l2uapi.Format) error {
	q := f.queueOf(fm.Type)
	if q == nil {
		return unix.EINVAL
	}
	// The spec: the coded format may not change while either queue has buffers.
	if len(q.bufs) > 0 || (q.typ == v4l2uapi.BufTypeCaptureMPlane && len(f.q[outQ].bufs) > 0) {
		return unix.EBUSY
	}
	p := fm.PixMP()
	list := f.n.OutputFormats
	if q.typ == v4l2uapi.BufTypeCaptureMPlane {
		list = f.n.CaptureFormats
	}
	if len(list) == 0 {
		return unix.EINVAL
	}
	fourcc := p.PixelFormat
	found := false
	for _, v := range list {
		found = found || v == fourcc
	}
	if !found {
		fourcc = list[0] // S_FMT adjusts rather than fails
	}
	f.setFormat(q, fourcc, p.Width, p.Height, p.PlaneFmt[0].SizeImage)
	*p = v4l2uapi.PixFormatMPlane{Width: q.width, Height: q.height, PixelFormat: q.fourcc, Field: v4l2uapi.FieldNone, NumPlanes: 1}
	p.PlaneFmt[0] = v4l2uapi.PlanePixFormat{BytesPerLine: q.bytesPerLine, SizeImage: q.sizeImg}
	return nil
}

// setFormat applies the bcm2835's rules: sizes clamped to 32..1920 in steps of 2, luma
// rows aligned to 64 bytes for YU12 (32 for NV12), height not padded, sizeimage 3/2 of the
// luma plane; bitstream buffers 512 KiB up to 720p, else 768 KiB, or what was asked if more.
func (f *File) setFormat(q *queue, fourcc, w, h, size uint32) {
	clamp := func(v uint32) uint32 { return min(max(v, 32), 1920) &^ 1 }
	q.fourcc, q.width, q.height = fourcc, clamp(w), clamp(h)
	if fourcc == v4l2uapi.PixFmtH264 {
		q.bytesPerLine = 0
		q.sizeImg = capSizeSmall
		if q.width*q.height > 1280*720 {
			q.sizeImg = capSizeLarge
		}
		q.sizeImg = max(q.sizeImg, size)
		return
	}
	align := uint32(64)
	if fourcc == v4l2uapi.PixFmtNV12 {
		align = 32
	}
	q.bytesPerLine = (q.width + align - 1) &^ (align - 1)
	q.sizeImg = q.bytesPerLine * q.height * 3 / 2
}

func (f *File) ctrl(id uint32) *int32 {
	switch id {
	case v4l2uapi.CIDBitrateMode:
		return &f.bitrateMode
	case v4l2uapi.CIDBitrate:
		return &f.bitrate
	case v4l2uapi.CIDH264IPeriod:
		return &f.iPeriod
	case v4l2uapi.CIDH264Profile:
		return &f.profile
	case v4l2uapi.CIDH264Level:
		return &f.level
	case v4l2uapi.CIDHeaderMode:
		return &f.headerMode
	case v4l2uapi.CIDRepeatSeqHeader:
		return &f.repeatSeq
	}
	return nil
}

// sCtrl follows the control framework: integers clamp and round to the step, menus out
// of range are ERANGE, masked menu items EINVAL, unknown controls EINVAL.
func (f *File) sCtrl(c *v4l2uapi.Control) error {
	v := c.Value
	switch c.ID {
	case v4l2uapi.CIDForceKeyFrame:
		f.forceKey = true
		return nil
	case v4l2uapi.CIDBitrate:
		v = (min(max(v, 25_000), 25_000_000) + 12_500) / 25_000 * 25_000
	case v4l2uapi.CIDH264IPeriod:
		v = max(v, 0)
	case v4l2uapi.CIDBitrateMode, v4l2uapi.CIDHeaderMode, v4l2uapi.CIDRepeatSeqHeader:
		if v < 0 || v > 1 {
			return unix.ERANGE
		}
	case v4l2uapi.CIDH264Profile:
		if v < 0 || v > v4l2uapi.ProfileHigh {
			return unix.ERANGE
		}
		if v == 3 { // Extended: masked
			return unix.EINVAL
		}
	case v4l2uapi.CIDH264Level:
		if v < 0 || v > 15 {
			return unix.ERANGE
		}
	default:
		return unix.EINVAL
	}
	*f.ctrl(c.ID) = v
	c.Value = v
	return nil
}

func (f *File) reqBufs(rb *v4l2uapi.RequestBuffers) error {
	q := f.queueOf(rb.Type)
	if q == nil || rb.Memory != v4l2uapi.MemoryMMAP {
		return unix.EINVAL
	}
	if q.streaming {
		return unix.EBUSY
	}
	count := rb.Count
	if count > 0 {
		count = min(max(count, f.n.MinBuffers, 1), 32)
		size := int(q.sizeImg+pageSize-1) &^ (pageSize - 1)
		if f.n.CMA > 0 && f.n.cmaUsed()-len(q.bufs)*size+int(count)*size > f.n.CMA {
			return unix.ENOMEM
		}
	}
	// Buffers still mapped are orphaned, not freed under the mapping (vb2).
	q.bufs, q.pending, q.done = nil, nil, nil
	if count > 0 {
		q.bufs = make([]buffer, count)
		q.pending, q.done = make([]int, 0, count), make([]int, 0, count)
		base := uint32(0)
		if q.typ == v4l2uapi.BufTypeCaptureMPlane {
			base = captureOffsetBase
		}
		size := (q.sizeImg + pageSize - 1) &^ (pageSize - 1)
		for i := range q.bufs {
			q.bufs[i] = buffer{mem: make([]byte, q.sizeImg), offset: base + uint32(i)*size}
		}
	}
	if q.typ == v4l2uapi.BufTypeOutputMPlane && count == 0 {
		f.state = StateInit
	}
	rb.Count = count
	rb.Capabilities = 1 | 1<<2 // MMAP, DMABUF
	return nil
}

func (n *Node) cmaUsed() int {
	used := 0
	for _, f := range n.files {
		for _, q := range &f.q {
			for _, b := range q.bufs {
				used += (len(b.mem) + pageSize - 1) &^ (pageSize - 1)
			}
		}
	}
	return used
}

// buf checks a buffer argument and returns its queue, buffer and first plane.
func (f *File) buf(b *v4l2uapi.Buffer) (*queue, *buffer, *v4l2uapi.Plane, error) {
	q := f.queueOf(b.Type)
	if q == nil || b.Memory != v4l2uapi.MemoryMMAP || int(b.Index) >= len(q.bufs) || b.Length < 1 || b.M == 0 {
		return nil, nil, nil, unix.EINVAL
	}
	p := *(**v4l2uapi.Plane)(unsafe.Pointer(&b.M))
	return q, &q.bufs[b.Index], p, nil
}

func (f *File) queryBuf(b *v4l2uapi.Buffer) error {
	_, bf, p, err := f.buf(b)
	if err != nil {
		return err
	}
	fill(b, p, bf)
	return nil
}

// fill writes a buffer's state into the caller's v4l2_buffer and plane.
func fill(b *v4l2uapi.Buffer, p *v4l2uapi.Plane, bf *buffer) {
	b.Flags = bf.flags | v4l2uapi.BufFlagTimestampCopy
	if bf.owned {
		b.Flags |= v4l2uapi.BufFlagQueued
	}
	b.Timestamp, b.Sequence, b.Field, b.Length = bf.ts, bf.seq, v4l2uapi.FieldNone, 1
	*p = v4l2uapi.Plane{BytesUsed: bf.bytesUsed, Length: uint32(len(bf.mem)), M: uintptr(bf.offset)}
}

func (f *File) qBuf(b *v4l2uapi.Buffer) error {
	q, bf, p, err := f.buf(b)
	if err != nil {
		return err
	}
	if bf.owned {
		return unix.EINVAL
	}
	bf.owned, bf.flags, bf.bytesUsed = true, 0, 0
	if q.typ == v4l2uapi.BufTypeOutputMPlane {
		bf.bytesUsed, bf.ts = p.BytesUsed, b.Timestamp
		if bf.bytesUsed == 0 || bf.bytesUsed > uint32(len(bf.mem)) {
			bf.bytesUsed = uint32(len(bf.mem)) // vb2: 0 means the whole buffer
		}
	}
	q.pending = append(q.pending, int(b.Index))
	if q.typ == v4l2uapi.BufTypeCaptureMPlane && f.lastPending {
		f.lastPending = false
		f.complete(q, int(b.Index), 0, v4l2uapi.BufFlagLast, unix.Timeval{})
		f.state = StateStopped
	}
	return nil
}

func (f *File) dqBuf(b *v4l2uapi.Buffer) error {
	q := f.queueOf(b.Type)
	if q == nil || b.Memory != v4l2uapi.MemoryMMAP || b.Length < 1 || b.M == 0 {
		return unix.EINVAL
	}
	if !q.streaming {
		return unix.EINVAL
	}
	if len(q.done) == 0 {
		if q.typ == v4l2uapi.BufTypeCaptureMPlane && f.lastTaken {
			return unix.EPIPE
		}
		return unix.EAGAIN
	}
	i := q.done[0]
	q.done = q.done[:copy(q.done, q.done[1:])]
	bf := &q.bufs[i]
	bf.owned = false
	b.Index = uint32(i)
	fill(b, *(**v4l2uapi.Plane)(unsafe.Pointer(&b.M)), bf)
	if bf.flags&v4l2uapi.BufFlagLast != 0 {
		f.lastTaken = true
	}
	return nil
}

func (f *File) streamOn(typ uint32) error {
	q := f.queueOf(typ)
	if q == nil || len(q.bufs) == 0 {
		return unix.EINVAL
	}
	if q.streaming {
		return nil
	}
	q.streaming = true
	if typ == v4l2uapi.BufTypeCaptureMPlane {
		// A fresh stream: new headers, a key frame first.
		f.frames, f.sinceKey, f.headersSent, f.lastTaken, f.lastPending = 0, 0, false, false, false
	}
	if f.q[capQ].streaming && f.q[outQ].streaming {
		f.state = StateEncoding
	}
	return nil
}

func (f *File) streamOff(typ uint32) error {
	q := f.queueOf(typ)
	if q == nil {
		return unix.EINVAL
	}
	q.streaming = false
	q.pending, q.done = q.pending[:0], q.done[:0]
	for i := range q.bufs {
		q.bufs[i].owned = false // back to the caller, contents undefined
	}
	if typ == v4l2uapi.BufTypeCaptureMPlane {
		f.state, f.lastTaken, f.lastPending = StateReset, false, false
	} else if f.state == StateEncoding || f.state == StateDrain {
		f.state, f.drainLeft = StateStopped, 0
	}
	return nil
}

// encoderCmd follows the bcm2835 where it departs from the spec: START is accepted and
// changes nothing, and STOP during a drain returns 0.
func (f *File) encoderCmd(c *v4l2uapi.EncoderCommand) error {
	switch c.Cmd {
	case v4l2uapi.EncCmdStart:
		return nil
	case v4l2uapi.EncCmdStop:
	default:
		return unix.EINVAL
	}
	if f.state != StateEncoding || !f.q[capQ].streaming || !f.q[outQ].streaming {
		return nil
	}
	f.state, f.drainLeft = StateDrain, len(f.q[outQ].pending)
	return nil
}

// complete marks buffer i of q done.
func (f *File) complete(q *queue, i int, used, flags uint32, ts unix.Timeval) {
	q.pending = q.pending[:removeFirst(q.pending, i)]
	q.done = append(q.done, i)
	bf := &q.bufs[i]
	bf.bytesUsed, bf.flags, bf.ts, bf.seq = used, flags, ts, q.seq
	q.seq++
}

// removeFirst deletes the first v from s in place and returns the new length.
func removeFirst(s []int, v int) int {
	for j, x := range s {
		if x == v {
			return j + copy(s[j:], s[j+1:])
		}
	}
	return len(s)
}

// run is the firmware: it encodes queued pictures into queued bitstream buffers in order
// and ends a drain with an empty LAST buffer.
func (f *File) run() {
	out, cp := &f.q[outQ], &f.q[capQ]
	for (f.state == StateEncoding || f.state == StateDrain) && out.streaming && cp.streaming && len(out.pending) > 0 {
		oi := out.pending[0]
		ob := &out.bufs[oi]
		if f.n.dropped(f.frames) {
			f.frames++
			f.forceKey = false // the frame it was for is gone
			f.complete(out, oi, ob.bytesUsed, 0, ob.ts)
			f.drained()
			continue
		}
		key := f.frames == 0 || f.forceKey || (f.iPeriod > 0 && f.sinceKey >= int(f.iPeriod))
		headers := key && (!f.headersSent || f.repeatSeq != 0)
		if headers && f.headerMode == v4l2uapi.HeaderModeSeparate {
			if len(cp.pending) < 2 {
				return
			}
			ci := cp.pending[0]
			f.complete(cp, ci, uint32(len(f.writeHeaders(cp.bufs[ci].mem[:0]))), 0, ob.ts)
			headers = false
			f.headersSent = true
		}
		if len(cp.pending) == 0 {
			return
		}
		ci := cp.pending[0]
		au := f.encode(cp.bufs[ci].mem[:0], ob, key, headers)
		flags := uint32(v4l2uapi.BufFlagPFrame)
		if key {
			flags = v4l2uapi.BufFlagKeyframe
			f.sinceKey, f.forceKey = 0, false
		}
		if len(au) > len(cp.bufs[ci].mem) {
			au, flags = nil, v4l2uapi.BufFlagError
		}
		f.frames++
		f.sinceKey++
		f.complete(out, oi, ob.bytesUsed, 0, ob.ts)
		f.complete(cp, ci, uint32(len(au)), flags, ob.ts)
		f.drained()
	}
	if f.state == StateDrain && f.drainLeft == 0 {
		if len(cp.pending) == 0 {
			f.lastPending = true
			return
		}
		f.complete(cp, cp.pending[0], 0, v4l2uapi.BufFlagLast, unix.Timeval{})
		f.state = StateStopped
	}
}

func (f *File) drained() {
	if f.state == StateDrain && f.drainLeft > 0 {
		f.drainLeft--
	}
}

// Slice payload layout; see Parse.
const magic = "RBFK"

// encode writes a frame's access unit into dst's spare capacity: an AUD, SPS and PPS when
// headers, and one slice (IDR when key) whose payload is magic, the frame number since the
// stream started, the timestamp in µs, the bitrate and the CRC-32 of the picture read
// from ob in the driver's layout.
func (f *File) encode(dst []byte, ob *buffer, key, headers bool) []byte {
	aud := byte(0x30) // primary_pic_type: I or P
	if key {
		aud = 0x10
	}
	dst = append(dst, 0, 0, 0, 1, 0x09, aud)
	if headers {
		dst = f.writeHeaders(dst)
		f.headersSent = true
	}
	nal := byte(0x41)
	if key {
		nal = 0x65
	}
	dst = append(dst, 0, 0, 0, 1, nal)
	var p [len(magic) + 4 + 8 + 4 + 4]byte
	copy(p[:], magic)
	binary.BigEndian.PutUint32(p[4:], uint32(f.frames))
	binary.BigEndian.PutUint64(p[8:], uint64(ob.ts.Nano()/1000))
	binary.BigEndian.PutUint32(p[16:], uint32(f.bitrate))
	binary.BigEndian.PutUint32(p[20:], f.pictureCRC(ob.mem))
	dst = appendEscaped(dst, p[:])
	return append(dst, 0x80) // rbsp_stop_one_bit
}

// writeHeaders appends an SPS naming the profile and level controls and a PPS.
func (f *File) writeHeaders(dst []byte) []byte {
	profile, constraints := byte(100), byte(0)
	switch f.profile {
	case v4l2uapi.ProfileBaseline:
		profile = 66
	case v4l2uapi.ProfileConstrainedBP:
		profile, constraints = 66, 0xc0 // constraint_set0 and set1, as x264 writes
	case v4l2uapi.ProfileMain:
		profile = 77
	}
	levelIDC := [...]byte{10, 9, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51}[f.level]
	dst = append(dst, 0, 0, 0, 1, 0x67, profile, constraints, levelIDC, 0xf4, 0x05, 0x80)
	return append(dst, 0, 0, 0, 1, 0x68, 0xce, 0x38, 0x80)
}

// appendEscaped appends p with emulation prevention: a 0x03 after two zeros that precede
// a byte up to 3, so no start code appears inside the NAL.
func appendEscaped(dst, p []byte) []byte {
	zeros := 0
	for _, c := range p {
		if zeros >= 2 && c <= 3 {
			dst = append(dst, 3)
			zeros = 0
		}
		dst = append(dst, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return dst
}

// pictureCRC is the CRC-32 (IEEE) of the visible picture in an OUTPUT buffer, read in the
// driver's layout and taken in I420 order: every Y row, then U, then V.
func (f *File) pictureCRC(mem []byte) uint32 {
	q := &f.q[outQ]
	w, h, bpl := int(q.width), int(q.height), int(q.bytesPerLine)
	cw, ch := w/2, h/2
	var crc uint32
	for y := range h {
		crc = crc32.Update(crc, crc32.IEEETable, mem[y*bpl:y*bpl+w])
	}
	chroma := mem[bpl*h:]
	if q.fourcc == v4l2uapi.PixFmtNV12 {
		if cap(f.scratch) < cw {
			f.scratch = make([]byte, cw)
		}
		row := f.scratch[:cw]
		for c := range 2 {
			for y := range ch {
				uv := chroma[y*bpl:]
				for x := range row {
					row[x] = uv[2*x+c]
				}
				crc = crc32.Update(crc, crc32.IEEETable, row)
			}
		}
		return crc
	}
	cbpl := bpl / 2
	for c := range 2 {
		plane := chroma[c*cbpl*ch:]
		for y := range ch {
			crc = crc32.Update(crc, crc32.IEEETable, plane[y*cbpl:y*cbpl+cw])
		}
	}
	return crc
}

// Mmap implements m2m.Device: it maps a buffer by its mem_offset.
func (f *File) Mmap(offset int64, length int) ([]byte, error) {
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if f.closed {
		return nil, unix.EBADF
	}
	if err := n.fault("mmap"); err != nil {
		n.record(fmt.Sprintf("mmap %#x = %s", offset, unix.ErrnoName(err.(unix.Errno))))
		return nil, err
	}
	for qi := range f.q {
		q := &f.q[qi]
		for i := range q.bufs {
			b := &q.bufs[i]
			if int64(b.offset) != offset {
				continue
			}
			if length <= 0 || length > len(b.mem) {
				return nil, unix.EINVAL
			}
			if n.maps == nil {
				n.maps = map[*byte]string{}
			}
			name := fmt.Sprintf("%s %d", qname(q.typ), i)
			n.maps[&b.mem[0]] = name
			n.record("mmap " + name)
			return b.mem[:length:length], nil
		}
	}
	return nil, unix.EINVAL
}

// Munmap implements m2m.Device.
func (f *File) Munmap(b []byte) error {
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(b) == 0 {
		return unix.EINVAL
	}
	name, ok := n.maps[&b[0]]
	if !ok {
		return unix.EINVAL
	}
	delete(n.maps, &b[0])
	n.record("munmap " + name)
	return nil
}

// Poll implements m2m.Device: the firmware runs, then readiness is reported as
// v4l2_m2m_poll does. It never sleeps: with nothing ready it returns 0 at once, as if
// the timeout had passed.
func (f *File) Poll(events int16, timeout time.Duration) (int16, error) {
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if f.closed {
		return 0, unix.EBADF
	}
	if err := n.fault("poll"); err != nil {
		return 0, err
	}
	f.run()
	out, cp := &f.q[outQ], &f.q[capQ]
	var rev int16
	if (!out.streaming || !out.owns()) && (!cp.streaming || !cp.owns()) {
		rev = unix.POLLERR
	} else {
		if len(out.done) > 0 {
			rev |= unix.POLLOUT
		}
		if len(cp.done) > 0 || f.lastTaken {
			rev |= unix.POLLIN
		}
	}
	rev &= events | unix.POLLERR | unix.POLLHUP
	if n.tracing {
		n.record("poll " + pollString(events) + " -> " + pollString(rev))
	}
	return rev, nil
}

func (q *queue) owns() bool { return len(q.pending) > 0 || len(q.done) > 0 }

func pollString(ev int16) string {
	var s []string
	for _, e := range []struct {
		bit  int16
		name string
	}{{unix.POLLIN, "IN"}, {unix.POLLOUT, "OUT"}, {unix.POLLPRI, "PRI"}, {unix.POLLERR, "ERR"}, {unix.POLLHUP, "HUP"}} {
		if ev&e.bit != 0 {
			s = append(s, e.name)
		}
	}
	if len(s) == 0 {
		return "0"
	}
	return strings.Join(s, "|")
}

// Close implements m2m.Device. The buffers of a closed context are freed with it, but
// mappings outlive it, as in the kernel: Leaks reports them.
func (f *File) Close() error {
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if f.closed {
		return unix.EBADF
	}
	f.closed = true
	for qi := range f.q {
		f.q[qi].bufs, f.q[qi].pending, f.q[qi].done, f.q[qi].streaming = nil, nil, nil, false
	}
	n.record("close")
	return nil
}
