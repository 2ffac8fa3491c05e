package m2m

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"roombox/hal"
	"roombox/internal/v4l2uapi"
)

// Config is what an encoder is opened with. Zero FPS, Bitrate and KeyInterval take the
// defaults of the software encoder: 30 fps, 1 Mbit/s, an IDR every 2 s.
type Config = hal.EncoderConfig

const (
	// Buffers asked for; the driver may give more.
	outputBuffers  = 2
	captureBuffers = 4

	// frameTimeout bounds the wait for the hardware to take or return a buffer; the
	// bcm2835 encodes a 1080p frame in well under 40 ms.
	frameTimeout = 2 * time.Second
	// dropGrace is how long a frame's CAPTURE buffer may trail its returned OUTPUT buffer
	// before the frame counts as dropped (the firmware may skip frames to hold the rate).
	dropGrace = 50 * time.Millisecond

	// The driver's bitrate control: 25 kbit/s to 25 Mbit/s in steps of 25 kbit/s.
	bitrateStep = 25_000
	bitrateMax  = 25_000_000
)

// Encoder is a V4L2 M2M H.264 encoder: constrained baseline, Annex-B, SPS and PPS before
// every IDR, one frame in flight. Like media.X264 it is not safe for concurrent use; the
// video pipeline serialises calls.
type Encoder struct {
	dev       Device
	cfg       Config
	nv12      bool   // input is NV12 rather than YU12
	bpl, rows int    // OUTPUT picture layout: luma stride and rows (chroma follows)
	imageSize uint32 // OUTPUT sizeimage
	maxBPS    int    // the level's bitrate ceiling

	out, cap   []mapping
	reqOut     bool // REQBUFS gave the OUTPUT queue buffers
	reqCap     bool
	onOut      bool // STREAMON OUTPUT succeeded
	onCap      bool
	held       int   // CAPTURE buffer whose data the last Encode returned; -1 if none
	frame      int64 // timestamp of the last queued frame, in µs: the frame count
	pendingKey bool  // a key frame was asked for and none has come out yet
	err        error // the first fatal error; Encode returns it from then on
	closed     bool

	// Ioctl arguments, kept with the encoder (on the heap) so a frame allocates nothing.
	// buf.M points at plane while an ioctl runs.
	buf   v4l2uapi.Buffer
	plane v4l2uapi.Plane
	ctrl  v4l2uapi.Control
}

type mapping struct {
	mem    []byte
	queued bool // owned by the driver
}

// NewEncoder opens the node info describes and starts it streaming at cfg.
func NewEncoder(info Info, cfg Config) (*Encoder, error) {
	cfg = cfg.WithDefaults()
	if cfg.Width < 32 || cfg.Height < 32 || cfg.Width > 1920 || cfg.Height > 1920 || cfg.Width%2 != 0 || cfg.Height%2 != 0 {
		return nil, fmt.Errorf("m2m: %dx%d: want even sizes from 32 to 1920", cfg.Width, cfg.Height)
	}
	if cfg.FPS < 0 || cfg.Bitrate < 0 || cfg.KeyInterval < 0 {
		return nil, fmt.Errorf("m2m: negative fps, bitrate or key interval in %+v", cfg)
	}
	lv, ok := pickLevel(cfg)
	if !ok {
		return nil, fmt.Errorf("m2m: %dx%d at %d fps is beyond H.264 level 4.2", cfg.Width, cfg.Height, cfg.FPS)
	}
	open := info.open
	if open == nil {
		open = OpenFile
	}
	dev, err := open(info.Path)
	if err != nil {
		return nil, fmt.Errorf("m2m: open %s: %w", info.Path, err)
	}
	e := &Encoder{dev: dev, cfg: cfg, nv12: info.Input == "NV12", held: -1, maxBPS: min(lv.maxBPS, bitrateMax)}
	if err := e.start(lv.menu); err != nil {
		return nil, errors.Join(err, e.release())
	}
	return e, nil
}

// start runs the encoder's initialisation sequence (dev-encoder.rst), naming the failed
// step in its error.
func (e *Encoder) start(level int32) error {
	w, h := uint32(e.cfg.Width), uint32(e.cfg.Height)
	var f v4l2uapi.Format
	// The coded format first: the bcm2835 takes the size from it (the spec calls it
	// read-only) and sizes its bitstream buffers by it.
	f.Type = v4l2uapi.BufTypeCaptureMPlane
	*f.PixMP() = v4l2uapi.PixFormatMPlane{Width: w, Height: h, PixelFormat: v4l2uapi.PixFmtH264, Field: v4l2uapi.FieldNone, NumPlanes: 1}
	if err := e.ioctl(v4l2uapi.SFmt, unsafe.Pointer(&f), "S_FMT CAPTURE H264 %dx%d", w, h); err != nil {
		return err
	}
	if f.PixMP().PixelFormat != v4l2uapi.PixFmtH264 {
		return fmt.Errorf("m2m: S_FMT CAPTURE H264: driver chose %s", fourcc(f.PixMP().PixelFormat))
	}
	in, inName := uint32(v4l2uapi.PixFmtYU12), "YU12"
	if e.nv12 {
		in, inName = v4l2uapi.PixFmtNV12, "NV12"
	}
	f = v4l2uapi.Format{Type: v4l2uapi.BufTypeOutputMPlane}
	*f.PixMP() = v4l2uapi.PixFormatMPlane{Width: w, Height: h, PixelFormat: in, Field: v4l2uapi.FieldNone, NumPlanes: 1}
	if err := e.ioctl(v4l2uapi.SFmt, unsafe.Pointer(&f), "S_FMT OUTPUT %s %dx%d", inName, w, h); err != nil {
		return err
	}
	p := f.PixMP()
	bpl, size := p.PlaneFmt[0].BytesPerLine, p.PlaneFmt[0].SizeImage
	switch {
	case p.PixelFormat != in || p.Width != w || p.Height != h || p.NumPlanes != 1:
		return fmt.Errorf("m2m: S_FMT OUTPUT %s %dx%d: driver chose %s %dx%d in %d planes",
			inName, w, h, fourcc(p.PixelFormat), p.Width, p.Height, p.NumPlanes)
	case bpl < w || bpl%2 != 0 || size < bpl*h*3/2:
		return fmt.Errorf("m2m: S_FMT OUTPUT %s %dx%d: bytesperline %d, sizeimage %d too small", inName, w, h, bpl, size)
	}
	// Chroma follows the luma rows the driver sized the image for: h on the bcm2835,
	// more on drivers that pad the height.
	e.bpl, e.rows, e.imageSize = int(bpl), int(size/bpl*2/3)&^1, size

	parm := v4l2uapi.StreamParm{Type: v4l2uapi.BufTypeOutputMPlane}
	parm.Output().TimePerFrame = v4l2uapi.Fract{Numerator: 1, Denominator: uint32(e.cfg.FPS)}
	if err := e.ioctl(v4l2uapi.SParm, unsafe.Pointer(&parm), "S_PARM OUTPUT 1/%d", e.cfg.FPS); err != nil {
		return err
	}
	// Set before the first REQBUFS, when the bcm2835 creates its firmware component.
	for _, c := range []struct {
		name string
		id   uint32
		v    int32
	}{
		{"BITRATE_MODE", v4l2uapi.CIDBitrateMode, v4l2uapi.BitrateModeCBR},
		{"BITRATE", v4l2uapi.CIDBitrate, int32(e.clampBitrate(e.cfg.Bitrate))},
		{"H264_I_PERIOD", v4l2uapi.CIDH264IPeriod, int32(e.cfg.KeyInterval)},
		{"H264_PROFILE", v4l2uapi.CIDH264Profile, v4l2uapi.ProfileConstrainedBP},
		{"H264_LEVEL", v4l2uapi.CIDH264Level, level},
		{"HEADER_MODE", v4l2uapi.CIDHeaderMode, v4l2uapi.HeaderModeJoined},
		{"REPEAT_SEQ_HEADER", v4l2uapi.CIDRepeatSeqHeader, 1},
	} {
		if err := e.setCtrl(c.id, c.v, c.name); err != nil {
			return err
		}
	}
	if err := e.allocate(v4l2uapi.BufTypeOutputMPlane, outputBuffers, "OUTPUT", &e.out, &e.reqOut); err != nil {
		return err
	}
	if err := e.allocate(v4l2uapi.BufTypeCaptureMPlane, captureBuffers, "CAPTURE", &e.cap, &e.reqCap); err != nil {
		return err
	}
	for i := range e.cap {
		if err := e.queue(v4l2uapi.BufTypeCaptureMPlane, i, 0); err != nil {
			return err
		}
	}
	typ := int32(v4l2uapi.BufTypeOutputMPlane)
	if err := e.ioctl(v4l2uapi.StreamOn, unsafe.Pointer(&typ), "STREAMON OUTPUT"); err != nil {
		return err
	}
	e.onOut = true
	typ = v4l2uapi.BufTypeCaptureMPlane
	if err := e.ioctl(v4l2uapi.StreamOn, unsafe.Pointer(&typ), "STREAMON CAPTURE"); err != nil {
		return err
	}
	e.onCap = true
	return nil
}

// allocate requests n MMAP buffers on a queue and maps every one the driver gives,
// recording what it got in *ms and *reqd as it goes, for release.
func (e *Encoder) allocate(typ uint32, n uint32, name string, ms *[]mapping, reqd *bool) error {
	rb := v4l2uapi.RequestBuffers{Count: n, Type: typ, Memory: v4l2uapi.MemoryMMAP}
	if err := e.ioctl(v4l2uapi.ReqBufs, unsafe.Pointer(&rb), "REQBUFS %s %d", name, n); err != nil {
		return err
	}
	*reqd = true
	if rb.Count == 0 {
		return fmt.Errorf("m2m: REQBUFS %s %d: driver gave no buffers", name, n)
	}
	*ms = make([]mapping, rb.Count)
	for i := range *ms {
		e.setBuf(typ, i)
		err := e.ioctl(v4l2uapi.QueryBuf, unsafe.Pointer(&e.buf), "QUERYBUF %s %d", name, i)
		runtime.KeepAlive(&e.plane)
		if err != nil {
			return err
		}
		mem, err := e.dev.Mmap(int64(e.plane.MemOffset()), int(e.plane.Length))
		if err != nil {
			return fmt.Errorf("m2m: mmap %s %d: %w", name, i, err)
		}
		(*ms)[i].mem = mem
	}
	return nil
}

// setBuf points the ioctl argument at buffer i of a queue, with its one plane.
func (e *Encoder) setBuf(typ uint32, i int) {
	e.plane = v4l2uapi.Plane{}
	e.buf = v4l2uapi.Buffer{Index: uint32(i), Type: typ, Memory: v4l2uapi.MemoryMMAP, Length: 1}
	*(*unsafe.Pointer)(unsafe.Pointer(&e.buf.M)) = unsafe.Pointer(&e.plane)
}

// queue hands buffer i to the driver; OUTPUT buffers carry a full picture and the frame's
// timestamp, which the driver copies to the bitstream buffer made from it.
func (e *Encoder) queue(typ uint32, i int, frame int64) error {
	e.setBuf(typ, i)
	ms, name := e.cap, "CAPTURE"
	if typ == v4l2uapi.BufTypeOutputMPlane {
		ms, name = e.out, "OUTPUT"
		e.plane.BytesUsed = e.imageSize
		e.buf.Timestamp = unix.NsecToTimeval(frame * 1000)
	}
	err := e.dev.Ioctl(v4l2uapi.QBuf, unsafe.Pointer(&e.buf))
	runtime.KeepAlive(&e.plane)
	if err != nil {
		return fmt.Errorf("m2m: QBUF %s %d: %w", name, i, err)
	}
	ms[i].queued = true
	return nil
}

// dequeue takes back a done buffer, leaving its flags, timestamp and plane in e.buf and
// e.plane; unix.EAGAIN when none is done.
func (e *Encoder) dequeue(typ uint32) (int, error) {
	e.setBuf(typ, 0)
	err := e.dev.Ioctl(v4l2uapi.DQBuf, unsafe.Pointer(&e.buf))
	runtime.KeepAlive(&e.plane)
	if err != nil {
		return -1, err
	}
	ms := e.cap
	if typ == v4l2uapi.BufTypeOutputMPlane {
		ms = e.out
	}
	i := int(e.buf.Index)
	if i >= len(ms) {
		return -1, fmt.Errorf("buffer index %d of %d", i, len(ms))
	}
	ms[i].queued = false
	return i, nil
}

// Encode queues f and returns its access unit, valid until the next Encode. A frame the
// hardware dropped comes back empty, with no error; a key frame asked for then is asked
// for again with the next frame.
func (e *Encoder) Encode(f *hal.Frame, forceKey bool) (hal.EncodedFrame, error) {
	if e.closed {
		return hal.EncodedFrame{}, ErrClosed
	}
	if e.err != nil {
		return hal.EncodedFrame{}, e.err
	}
	if f.Width != e.cfg.Width || f.Height != e.cfg.Height {
		return hal.EncodedFrame{}, fmt.Errorf("m2m: frame is %dx%d, encoder %dx%d", f.Width, f.Height, e.cfg.Width, e.cfg.Height)
	}
	ef, err := e.encode(f, forceKey)
	if err != nil {
		e.err = err
	}
	return ef, err
}

func (e *Encoder) encode(f *hal.Frame, forceKey bool) (hal.EncodedFrame, error) {
	if e.held >= 0 {
		if err := e.queue(v4l2uapi.BufTypeCaptureMPlane, e.held, 0); err != nil {
			return hal.EncodedFrame{}, err
		}
		e.held = -1
	}
	i, err := e.freeOutput()
	if err != nil {
		return hal.EncodedFrame{}, err
	}
	if err := e.fill(e.out[i].mem, f); err != nil {
		return hal.EncodedFrame{}, err
	}
	if forceKey || e.pendingKey {
		// The driver passes this to the firmware at once; with one frame in flight it
		// applies to the frame queued next.
		if err := e.setCtrl(v4l2uapi.CIDForceKeyFrame, 1, "FORCE_KEY_FRAME"); err != nil {
			return hal.EncodedFrame{}, err
		}
		e.pendingKey = true
	}
	e.frame++
	if err := e.queue(v4l2uapi.BufTypeOutputMPlane, i, e.frame); err != nil {
		return hal.EncodedFrame{}, err
	}
	return e.await()
}

// freeOutput returns an OUTPUT buffer the driver does not own, taking one back if need be.
func (e *Encoder) freeOutput() (int, error) {
	for {
		for i := range e.out {
			if !e.out[i].queued {
				return i, nil
			}
		}
		_, err := e.dequeue(v4l2uapi.BufTypeOutputMPlane)
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EAGAIN) {
			return -1, fmt.Errorf("m2m: DQBUF OUTPUT: %w", err)
		}
		rev, err := e.dev.Poll(unix.POLLOUT, frameTimeout)
		if err != nil {
			return -1, fmt.Errorf("m2m: poll OUTPUT: %w", err)
		}
		if rev == 0 {
			return -1, fmt.Errorf("m2m: poll OUTPUT: no buffer back in %v", frameTimeout)
		}
	}
}

// await waits for the bitstream of the frame just queued, taking back OUTPUT buffers as
// they come.
func (e *Encoder) await() (hal.EncodedFrame, error) {
	taken := false // this frame's OUTPUT buffer is back: the hardware has read it
	for {
		events, timeout := int16(unix.POLLIN|unix.POLLOUT), frameTimeout
		if taken {
			events, timeout = unix.POLLIN, dropGrace
		}
		rev, err := e.dev.Poll(events, timeout)
		switch {
		case err != nil:
			return hal.EncodedFrame{}, fmt.Errorf("m2m: poll: %w", err)
		case rev == 0 && taken:
			return hal.EncodedFrame{}, nil // dropped
		case rev == 0:
			return hal.EncodedFrame{}, fmt.Errorf("m2m: poll: no buffer back in %v", frameTimeout)
		case rev&(unix.POLLERR|unix.POLLHUP) != 0:
			return hal.EncodedFrame{}, fmt.Errorf("m2m: poll: error event %#x", rev)
		}
		if rev&unix.POLLOUT != 0 {
			_, err := e.dequeue(v4l2uapi.BufTypeOutputMPlane)
			switch {
			case err == nil:
				taken = taken || e.buf.Timestamp.Nano() == e.frame*1000
			case !errors.Is(err, unix.EAGAIN):
				return hal.EncodedFrame{}, fmt.Errorf("m2m: DQBUF OUTPUT: %w", err)
			}
		}
		if rev&unix.POLLIN == 0 {
			continue
		}
		i, err := e.dequeue(v4l2uapi.BufTypeCaptureMPlane)
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return hal.EncodedFrame{}, fmt.Errorf("m2m: DQBUF CAPTURE: %w", err)
		}
		flags, off, n := e.buf.Flags, e.plane.DataOffset, e.plane.BytesUsed
		if flags&v4l2uapi.BufFlagLast != 0 {
			return hal.EncodedFrame{}, fmt.Errorf("m2m: DQBUF CAPTURE: unexpected end of stream (LAST)")
		}
		if flags&v4l2uapi.BufFlagError != 0 || n <= off || int(n) > len(e.cap[i].mem) {
			// A corrupt or empty bitstream buffer: count the frame as dropped.
			if err := e.queue(v4l2uapi.BufTypeCaptureMPlane, i, 0); err != nil {
				return hal.EncodedFrame{}, err
			}
			continue
		}
		e.held = i
		key := flags&v4l2uapi.BufFlagKeyframe != 0
		if key {
			e.pendingKey = false
		}
		return hal.EncodedFrame{Data: e.cap[i].mem[off:n], Keyframe: key}, nil
	}
}

// fill copies f's visible picture into an OUTPUT buffer in the driver's layout.
func (e *Encoder) fill(dst []byte, f *hal.Frame) error {
	w, h, cw, ch := f.Width, f.Height, f.Width/2, f.Height/2
	if len(f.Y) < (h-1)*f.StrideY+w || len(f.U) < (ch-1)*f.StrideUV+cw || len(f.V) < (ch-1)*f.StrideUV+cw {
		return fmt.Errorf("m2m: frame %d: planes shorter than %dx%d", f.Seq, w, h)
	}
	bpl := e.bpl
	for y := range h {
		copy(dst[y*bpl:y*bpl+w], f.Y[y*f.StrideY:])
	}
	chroma := dst[bpl*e.rows:]
	if e.nv12 {
		for y := range ch {
			row, u, v := chroma[y*bpl:y*bpl+2*cw], f.U[y*f.StrideUV:][:cw], f.V[y*f.StrideUV:][:cw]
			for x := range cw {
				row[2*x], row[2*x+1] = u[x], v[x]
			}
		}
		return nil
	}
	cbpl := bpl / 2
	vplane := chroma[cbpl*e.rows/2:]
	for y := range ch {
		copy(chroma[y*cbpl:y*cbpl+cw], f.U[y*f.StrideUV:])
		copy(vplane[y*cbpl:y*cbpl+cw], f.V[y*f.StrideUV:])
	}
	return nil
}

// SetBitrate changes the target bitrate at once, clamped to what the driver and the
// level allow.
func (e *Encoder) SetBitrate(bps int) error {
	if e.closed {
		return ErrClosed
	}
	if e.err != nil {
		return e.err
	}
	return e.setCtrl(v4l2uapi.CIDBitrate, int32(e.clampBitrate(bps)), "BITRATE")
}

func (e *Encoder) clampBitrate(bps int) int {
	return max(bitrateStep, min(bps, e.maxBPS)/bitrateStep*bitrateStep)
}

func (e *Encoder) setCtrl(id uint32, v int32, name string) error {
	e.ctrl = v4l2uapi.Control{ID: id, Value: v}
	if err := e.dev.Ioctl(v4l2uapi.SCtrl, unsafe.Pointer(&e.ctrl)); err != nil {
		return fmt.Errorf("m2m: S_CTRL %s=%d: %w", name, v, err)
	}
	return nil
}

// ioctl issues a setup request; the step's name, formatted only on failure, leads its
// error.
func (e *Encoder) ioctl(req uint, arg unsafe.Pointer, step string, args ...any) error {
	if err := e.dev.Ioctl(req, arg); err != nil {
		return fmt.Errorf("m2m: %s: %w", fmt.Sprintf(step, args...), err)
	}
	return nil
}

// Close drains the encoder (the frames it still holds are discarded), stops both queues
// and releases the buffers and the device, whatever state an earlier error left it in.
func (e *Encoder) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	var drain error
	if e.onOut && e.onCap && e.err == nil {
		drain = e.drain()
	}
	return errors.Join(drain, e.release())
}

// drain stops the encoder the way dev-encoder.rst describes: ENCODER_CMD STOP, service
// both queues until a CAPTURE buffer carries LAST, after which DQBUF fails with EPIPE.
func (e *Encoder) drain() error {
	if e.held >= 0 {
		if err := e.queue(v4l2uapi.BufTypeCaptureMPlane, e.held, 0); err != nil {
			return err
		}
		e.held = -1
	}
	cmd := v4l2uapi.EncoderCommand{Cmd: v4l2uapi.EncCmdStop}
	if err := e.ioctl(v4l2uapi.EncoderCmd, unsafe.Pointer(&cmd), "ENCODER_CMD STOP"); err != nil {
		return err
	}
	for {
		rev, err := e.dev.Poll(unix.POLLIN|unix.POLLOUT, frameTimeout)
		switch {
		case err != nil:
			return fmt.Errorf("m2m: drain: poll: %w", err)
		case rev == 0:
			return fmt.Errorf("m2m: drain: no LAST buffer in %v", frameTimeout)
		}
		if rev&unix.POLLOUT != 0 {
			if _, err := e.dequeue(v4l2uapi.BufTypeOutputMPlane); err != nil && !errors.Is(err, unix.EAGAIN) {
				return fmt.Errorf("m2m: drain: DQBUF OUTPUT: %w", err)
			}
		}
		if rev&unix.POLLIN == 0 {
			continue
		}
		i, err := e.dequeue(v4l2uapi.BufTypeCaptureMPlane)
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return fmt.Errorf("m2m: drain: DQBUF CAPTURE: %w", err)
		}
		if e.buf.Flags&v4l2uapi.BufFlagLast != 0 {
			break
		}
		if err := e.queue(v4l2uapi.BufTypeCaptureMPlane, i, 0); err != nil {
			return fmt.Errorf("m2m: drain: %w", err)
		}
	}
	if _, err := e.dequeue(v4l2uapi.BufTypeCaptureMPlane); !errors.Is(err, unix.EPIPE) {
		return fmt.Errorf("m2m: drain: DQBUF CAPTURE after LAST: got %v, want EPIPE", err)
	}
	return nil
}

// release undoes start, every step tried whatever the others return.
func (e *Encoder) release() error {
	var errs []error
	for _, q := range []struct {
		typ      int32
		name     string
		on, reqd *bool
		ms       *[]mapping
	}{
		{v4l2uapi.BufTypeOutputMPlane, "OUTPUT", &e.onOut, &e.reqOut, &e.out},
		{v4l2uapi.BufTypeCaptureMPlane, "CAPTURE", &e.onCap, &e.reqCap, &e.cap},
	} {
		if *q.on {
			typ := q.typ
			errs = append(errs, e.ioctl(v4l2uapi.StreamOff, unsafe.Pointer(&typ), "STREAMOFF %s", q.name))
			*q.on = false
		}
		for i, m := range *q.ms {
			if m.mem != nil {
				if err := e.dev.Munmap(m.mem); err != nil {
					errs = append(errs, fmt.Errorf("m2m: munmap %s %d: %w", q.name, i, err))
				}
			}
		}
		*q.ms = nil
		if *q.reqd {
			rb := v4l2uapi.RequestBuffers{Type: uint32(q.typ), Memory: v4l2uapi.MemoryMMAP}
			errs = append(errs, e.ioctl(v4l2uapi.ReqBufs, unsafe.Pointer(&rb), "REQBUFS %s 0", q.name))
			*q.reqd = false
		}
	}
	if err := e.dev.Close(); err != nil {
		errs = append(errs, fmt.Errorf("m2m: close: %w", err))
	}
	e.held = -1
	return errors.Join(errs...)
}

// level is an H.264 level's limits (Table A-1) and its V4L2 menu value.
type level struct {
	menu     int32
	mbps, fs int // macroblocks per second, per frame
	maxBPS   int // baseline/main profile bit rate ceiling
}

// levels from 3.1, the level of the software encoder and of the profile-level-id 42e01f
// the SFU and browsers negotiate, up to 4.2; the bcm2835 is a level 4.0 part.
var levels = []level{
	{v4l2uapi.Level3_1, 108_000, 3_600, 14_000_000},
	{v4l2uapi.Level3_2, 216_000, 5_120, 20_000_000},
	{v4l2uapi.Level4_0, 245_760, 8_192, 20_000_000},
	{v4l2uapi.Level4_1, 245_760, 8_192, 50_000_000},
	{v4l2uapi.Level4_2, 522_240, 8_704, 50_000_000},
}

// pickLevel returns the lowest level whose limits hold cfg's picture, rate and bitrate.
func pickLevel(cfg Config) (level, bool) {
	fs := (cfg.Width + 15) / 16 * ((cfg.Height + 15) / 16)
	for _, l := range levels {
		if fs <= l.fs && fs*cfg.FPS <= l.mbps && cfg.Bitrate <= l.maxBPS {
			return l, true
		}
	}
	return level{}, false
}

func fourcc(v uint32) string {
	return string([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}
