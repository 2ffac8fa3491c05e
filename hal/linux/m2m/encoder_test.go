package m2m_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"roombox/hal"
	"roombox/hal/linux/m2m"
	"roombox/hal/linux/m2m/m2mtest"
	"roombox/hal/sim"
)

const (
	testW, testH = 600, 360 // 600 is not a multiple of 64: the driver pads rows to 640
	testBPL      = 640
	testSize     = testBPL * testH * 3 / 2
)

var testCfg = m2m.Config{Width: testW, Height: testH, FPS: 30, Bitrate: 1_000_000, KeyInterval: 4}

// frames returns a source of sim test-pattern frames.
func frames(t testing.TB, w, h int) func() *hal.Frame {
	t.Helper()
	b, err := sim.New(sim.Config{Width: w, Height: h, Clock: sim.NewInstantClock(time.Unix(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	var f hal.Frame
	return func() *hal.Frame {
		if err := b.Camera.ReadFrame(context.Background(), &f); err != nil {
			t.Fatal(err)
		}
		return &f
	}
}

// open returns an encoder on a fresh model of the bcm2835 encoder and the node, its trace
// emptied of the discovery calls.
func open(t *testing.T, node *m2mtest.Node, cfg m2m.Config) *m2m.Encoder {
	t.Helper()
	info, err := m2mtest.Info(node, "/dev/video11")
	if err != nil {
		t.Fatal(err)
	}
	node.Trace()
	e, err := m2m.NewEncoder(info, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func setupTrace(outFmt string, bpl, size, capSize int) []string {
	tr := []string{
		"open /dev/video11",
		fmt.Sprintf("S_FMT CAPTURE H264 %dx%d bpl=0 size=%d", testW, testH, capSize),
		fmt.Sprintf("S_FMT OUTPUT %s %dx%d bpl=%d size=%d", outFmt, testW, testH, bpl, size),
		"S_PARM OUTPUT 1/30",
		"S_CTRL BITRATE_MODE=1",
		"S_CTRL BITRATE=1000000",
		"S_CTRL H264_I_PERIOD=4",
		"S_CTRL H264_PROFILE=1",
		"S_CTRL H264_LEVEL=9",
		"S_CTRL HEADER_MODE=1",
		"S_CTRL REPEAT_SEQ_HEADER=1",
		"REQBUFS OUTPUT 2",
	}
	for i := range 2 {
		tr = append(tr, fmt.Sprintf("QUERYBUF OUTPUT %d", i), fmt.Sprintf("mmap OUTPUT %d", i))
	}
	tr = append(tr, "REQBUFS CAPTURE 4")
	for i := range 4 {
		tr = append(tr, fmt.Sprintf("QUERYBUF CAPTURE %d", i), fmt.Sprintf("mmap CAPTURE %d", i))
	}
	for i := range 4 {
		tr = append(tr, fmt.Sprintf("QBUF CAPTURE %d", i))
	}
	return append(tr, "STREAMON OUTPUT", "STREAMON CAPTURE")
}

func releaseTrace() []string {
	return []string{
		"STREAMOFF OUTPUT", "munmap OUTPUT 0", "munmap OUTPUT 1", "REQBUFS OUTPUT 0",
		"STREAMOFF CAPTURE", "munmap CAPTURE 0", "munmap CAPTURE 1", "munmap CAPTURE 2", "munmap CAPTURE 3", "REQBUFS CAPTURE 0",
		"close",
	}
}

func diffTrace(t *testing.T, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("trace differs at call %d:\n got  %q\n want %q\nfull trace:\n%s", i, g, w, strings.Join(got, "\n"))
		}
	}
}

// TestEncoderLifecycle runs stream-on, 12 frames with a forced key frame and a bitrate
// change, drain and stream-off, checking every call the driver sees and every access unit.
func TestEncoderLifecycle(t *testing.T) {
	node := m2mtest.Encoder()
	e := open(t, node, testCfg)
	diffTrace(t, node.Trace(), setupTrace("YU12", testBPL, testSize, 512<<10))

	next := frames(t, testW, testH)
	var want []string
	const n = 12
	for i := range n {
		force := i == 6
		if i == 7 {
			if err := e.SetBitrate(512_345); err != nil { // rounded down to the 25 kbit/s step
				t.Fatal(err)
			}
			want = append(want, "S_CTRL BITRATE=500000")
		}
		f := next()
		ef, err := e.Encode(f, force)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		au, err := m2mtest.Parse(ef.Data)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		key := i == 0 || i == 4 || i == 6 || i == 10 // I period 4, restarted by the forced key at 6
		bitrate := 1_000_000
		if i >= 7 {
			bitrate = 500_000
		}
		switch {
		case au.Frame != i || au.TimestampUS != int64(i+1):
			t.Errorf("frame %d: access unit of frame %d, timestamp %d", i, au.Frame, au.TimestampUS)
		case ef.Keyframe != key || au.IDR != key || au.HasSPS() != key:
			t.Errorf("frame %d: keyframe flag %v, IDR %v, SPS+PPS %v; want %v", i, ef.Keyframe, au.IDR, au.HasSPS(), key)
		case au.CRC != m2mtest.FrameCRC(f):
			t.Errorf("frame %d: the driver read a different picture (CRC %08x, frame %08x)", i, au.CRC, m2mtest.FrameCRC(f))
		case au.Bitrate != bitrate:
			t.Errorf("frame %d: encoded at %d bit/s, want %d", i, au.Bitrate, bitrate)
		case key && (au.Profile != 66 || au.Constraints&0x40 == 0 || au.Level != 31):
			t.Errorf("frame %d: SPS profile %d constraints %#x level %d, want constrained baseline 3.1", i, au.Profile, au.Constraints, au.Level)
		}
		if i > 0 {
			want = append(want, fmt.Sprintf("QBUF CAPTURE %d", (i-1)%4))
		}
		if force {
			want = append(want, "S_CTRL FORCE_KEY_FRAME=1")
		}
		flag := ""
		if key {
			flag = " KEYFRAME"
		}
		want = append(want,
			fmt.Sprintf("QBUF OUTPUT 0 used=%d ts=%d", testSize, i+1),
			"poll IN|OUT -> IN|OUT",
			fmt.Sprintf("DQBUF OUTPUT -> 0 ts=%d", i+1),
			fmt.Sprintf("DQBUF CAPTURE -> %d ts=%d used=%d%s", i%4, i+1, len(ef.Data), flag))
	}
	diffTrace(t, node.Trace(), want)

	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	want = append([]string{
		fmt.Sprintf("QBUF CAPTURE %d", (n-1)%4),
		"ENCODER_CMD STOP",
		"poll IN|OUT -> IN",
		fmt.Sprintf("DQBUF CAPTURE -> %d ts=0 used=0 LAST", n%4),
		"DQBUF CAPTURE = EPIPE",
	}, releaseTrace()...)
	diffTrace(t, node.Trace(), want)
	if l := node.Leaks(); l != "" {
		t.Fatalf("leaked: %s", l)
	}
	if _, err := e.Encode(next(), false); !errors.Is(err, m2m.ErrClosed) {
		t.Fatalf("Encode after Close: %v, want ErrClosed", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestEncoderStrides feeds a frame whose rows are padded and an NV12-only driver: the
// picture the driver reads must still be the frame's.
func TestEncoderStrides(t *testing.T) {
	for _, nv12 := range []bool{false, true} {
		t.Run(fmt.Sprintf("nv12=%v", nv12), func(t *testing.T) {
			node := m2mtest.Encoder()
			if nv12 {
				node.OutputFormats = []uint32{0x3231564e} // NV12 only
			}
			e := open(t, node, testCfg)
			defer e.Close()
			f := &hal.Frame{Width: testW, Height: testH, StrideY: testW + 24, StrideUV: testW/2 + 40}
			f.Y = make([]byte, f.StrideY*testH)
			f.U = make([]byte, f.StrideUV*testH/2)
			f.V = make([]byte, f.StrideUV*testH/2)
			for i := range f.Y {
				f.Y[i] = byte(i * 7)
			}
			for i := range f.U {
				f.U[i], f.V[i] = byte(i*3+1), byte(i*5+2)
			}
			for i := range 3 {
				f.Y[0] = byte(i)
				ef, err := e.Encode(f, false)
				if err != nil {
					t.Fatal(err)
				}
				au, err := m2mtest.Parse(ef.Data)
				if err != nil {
					t.Fatal(err)
				}
				if au.CRC != m2mtest.FrameCRC(f) {
					t.Fatalf("frame %d: the driver read a different picture", i)
				}
			}
		})
	}
}

func TestEncoderSetupErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		prepare func(*m2mtest.Node)
		err     unix.Errno
		msg     string
		tail    []string // the last calls: what was undone
	}{
		{
			name:    "busy at S_FMT",
			prepare: func(n *m2mtest.Node) { n.Inject(m2mtest.Fault{Op: "S_FMT OUTPUT", Err: unix.EBUSY, Count: 1}) },
			err:     unix.EBUSY,
			msg:     "m2m: S_FMT OUTPUT YU12 600x360: device or resource busy",
			tail:    []string{"close"},
		},
		{
			name:    "CMA short at REQBUFS",
			prepare: func(n *m2mtest.Node) { n.CMA = 1 << 20 }, // the OUTPUT buffers fit, 4 x 512 KiB do not
			err:     unix.ENOMEM,
			msg:     "m2m: REQBUFS CAPTURE 4: cannot allocate memory",
			tail:    []string{"REQBUFS CAPTURE 4 = ENOMEM", "munmap OUTPUT 0", "munmap OUTPUT 1", "REQBUFS OUTPUT 0", "close"},
		},
		{
			name:    "ESRCH at STREAMON",
			prepare: func(n *m2mtest.Node) { n.Inject(m2mtest.Fault{Op: "STREAMON CAPTURE", Err: unix.ESRCH, Count: 1}) },
			err:     unix.ESRCH,
			msg:     "m2m: STREAMON CAPTURE: no such process",
			tail: []string{"STREAMON CAPTURE = ESRCH", "STREAMOFF OUTPUT", "munmap OUTPUT 0", "munmap OUTPUT 1", "REQBUFS OUTPUT 0",
				"munmap CAPTURE 0", "munmap CAPTURE 1", "munmap CAPTURE 2", "munmap CAPTURE 3", "REQBUFS CAPTURE 0", "close"},
		},
		{
			name:    "mmap fails",
			prepare: func(n *m2mtest.Node) { n.Inject(m2mtest.Fault{Op: "mmap", Err: unix.EINVAL, Skip: 3, Count: 1}) },
			err:     unix.EINVAL,
			msg:     "m2m: mmap CAPTURE 1: invalid argument",
			tail:    []string{"mmap 0x40080000 = EINVAL", "munmap OUTPUT 0", "munmap OUTPUT 1", "REQBUFS OUTPUT 0", "munmap CAPTURE 0", "REQBUFS CAPTURE 0", "close"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			node := m2mtest.Encoder()
			c.prepare(node)
			info, err := m2mtest.Info(node, "/dev/video11")
			if err != nil {
				t.Fatal(err)
			}
			node.Trace()
			_, err = m2m.NewEncoder(info, testCfg)
			if !errors.Is(err, c.err) || err.Error() != c.msg {
				t.Fatalf("NewEncoder: %v, want %q", err, c.msg)
			}
			tr := node.Trace()
			if len(tr) < len(c.tail) {
				t.Fatalf("trace %q", tr)
			}
			diffTrace(t, tr[len(tr)-len(c.tail):], c.tail)
			if l := node.Leaks(); l != "" {
				t.Fatalf("leaked: %s", l)
			}
		})
	}
}

// TestEncoderDQBUFAgain: a DQBUF that finds nothing after all is retried after a poll.
func TestEncoderDQBUFAgain(t *testing.T) {
	node := m2mtest.Encoder()
	e := open(t, node, testCfg)
	defer e.Close()
	next := frames(t, testW, testH)
	node.Inject(m2mtest.Fault{Op: "DQBUF CAPTURE", Err: unix.EAGAIN, Count: 1})
	node.Trace()
	ef, err := e.Encode(next(), false)
	if err != nil {
		t.Fatal(err)
	}
	if au, err := m2mtest.Parse(ef.Data); err != nil || au.Frame != 0 {
		t.Fatalf("frame %+v, %v", au, err)
	}
	diffTrace(t, node.Trace(), []string{
		fmt.Sprintf("QBUF OUTPUT 0 used=%d ts=1", testSize),
		"poll IN|OUT -> IN|OUT",
		"DQBUF OUTPUT -> 0 ts=1",
		"DQBUF CAPTURE = EAGAIN",
		"poll IN -> IN",
		fmt.Sprintf("DQBUF CAPTURE -> 0 ts=1 used=%d KEYFRAME", len(ef.Data)),
	})
}

// TestEncoderDroppedFrame: the firmware skips a frame that was to be a forced key frame;
// Encode returns nothing for it and asks for the key frame again with the next.
func TestEncoderDroppedFrame(t *testing.T) {
	node := m2mtest.Encoder()
	e := open(t, node, m2m.Config{Width: testW, Height: testH, KeyInterval: 100})
	defer e.Close()
	node.Drop(2)
	next := frames(t, testW, testH)
	for range 2 {
		if _, err := e.Encode(next(), false); err != nil {
			t.Fatal(err)
		}
	}
	node.Trace()
	ef, err := e.Encode(next(), true)
	if err != nil || len(ef.Data) != 0 || ef.Keyframe {
		t.Fatalf("dropped frame: %d bytes, key %v, %v", len(ef.Data), ef.Keyframe, err)
	}
	diffTrace(t, node.Trace(), []string{
		"QBUF CAPTURE 1",
		"S_CTRL FORCE_KEY_FRAME=1",
		fmt.Sprintf("QBUF OUTPUT 0 used=%d ts=3", testSize),
		"poll IN|OUT -> OUT",
		"DQBUF OUTPUT -> 0 ts=3",
		"poll IN -> 0",
	})
	ef, err = e.Encode(next(), false)
	if err != nil {
		t.Fatal(err)
	}
	au, err := m2mtest.Parse(ef.Data)
	if err != nil || au.Frame != 3 || !ef.Keyframe || !au.HasSPS() {
		t.Fatalf("frame after the drop: %+v key %v, %v; want frame 3, an IDR with SPS", au, ef.Keyframe, err)
	}
	if tr := node.Trace(); !slices.Contains(tr, "S_CTRL FORCE_KEY_FRAME=1") {
		t.Fatalf("the key frame was not asked for again: %q", tr)
	}
	ef, err = e.Encode(next(), false)
	if err != nil || ef.Keyframe {
		t.Fatalf("frame 4: key %v, %v; want a P frame", ef.Keyframe, err)
	}
}

// TestEncoderIOError: a fatal error mid-stream fails Encode, and every Encode after it,
// with the step named; Close skips the drain and still releases everything.
func TestEncoderIOError(t *testing.T) {
	node := m2mtest.Encoder()
	e := open(t, node, testCfg)
	next := frames(t, testW, testH)
	node.Inject(m2mtest.Fault{Op: "QBUF OUTPUT", Err: unix.EIO, Skip: 3, Count: -1})
	for i := range 3 {
		if _, err := e.Encode(next(), false); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	for range 2 {
		_, err := e.Encode(next(), false)
		if !errors.Is(err, unix.EIO) || err.Error() != "m2m: QBUF OUTPUT 0: input/output error" {
			t.Fatalf("Encode: %v, want the QBUF OUTPUT EIO", err)
		}
	}
	if err := e.SetBitrate(2_000_000); !errors.Is(err, unix.EIO) {
		t.Fatalf("SetBitrate after the error: %v", err)
	}
	node.Trace()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	diffTrace(t, node.Trace(), releaseTrace())
	if l := node.Leaks(); l != "" {
		t.Fatalf("leaked: %s", l)
	}
}

// TestEncoderCloseErrors: a release step that fails is reported and the rest still run.
func TestEncoderCloseErrors(t *testing.T) {
	node := m2mtest.Encoder()
	e := open(t, node, testCfg)
	if _, err := e.Encode(frames(t, testW, testH)(), false); err != nil {
		t.Fatal(err)
	}
	node.Inject(m2mtest.Fault{Op: "ENCODER_CMD", Err: unix.EIO, Count: 1})
	node.Inject(m2mtest.Fault{Op: "STREAMOFF OUTPUT", Err: unix.EIO, Count: 1})
	err := e.Close()
	if !errors.Is(err, unix.EIO) || !strings.Contains(err.Error(), "ENCODER_CMD STOP") || !strings.Contains(err.Error(), "STREAMOFF OUTPUT") {
		t.Fatalf("Close: %v", err)
	}
	if l := node.Leaks(); l != "" {
		t.Fatalf("leaked: %s", l)
	}
}

func TestEncoderConfig(t *testing.T) {
	node := m2mtest.Encoder()
	info, err := m2mtest.Info(node, "/dev/video11")
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []m2m.Config{
		{Width: 641, Height: 360}, {Width: 16, Height: 16}, {Width: 3840, Height: 2160},
		{Width: 1920, Height: 1080, FPS: 120},
	} {
		if _, err := m2m.NewEncoder(info, cfg); err == nil {
			t.Errorf("NewEncoder(%+v) succeeded", cfg)
		}
	}
	// 1080p30 needs level 4.0; the level's ceiling bounds the bitrate.
	node.Trace()
	e, err := m2m.NewEncoder(info, m2m.Config{Width: 1920, Height: 1080, Bitrate: 4_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetBitrate(1 << 30); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	tr := node.Trace()
	for _, want := range []string{"S_CTRL H264_LEVEL=11", "S_CTRL H264_I_PERIOD=60", "S_CTRL BITRATE=20000000", "S_FMT CAPTURE H264 1920x1080 bpl=0 size=786432"} {
		if !slices.Contains(tr, want) {
			t.Errorf("no %q in %q", want, tr)
		}
	}
	if f := node.Files(); f[len(f)-1].Control(0x009909cf) != 20_000_000 {
		t.Errorf("bitrate control %d", f[len(f)-1].Control(0x009909cf))
	}
}

// TestEncodeAllocs: a frame in steady state allocates nothing.
func TestEncodeAllocs(t *testing.T) {
	node := m2mtest.Encoder()
	e := open(t, node, testCfg)
	defer e.Close()
	node.SetTracing(false)
	f := frames(t, testW, testH)()
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		i++
		if _, err := e.Encode(f, i%10 == 0); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if err := e.SetBitrate(800_000 + i*1000); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame, want 0", allocs)
	}
}

// BenchmarkEncode measures the encoder's own overhead per frame against the model
// (copying the picture into the OUTPUT buffer and the ioctls), not hardware speed; the
// model's CRC of the picture is included.
func BenchmarkEncode(b *testing.B) {
	for _, s := range []struct{ w, h int }{{640, 360}, {1280, 720}} {
		b.Run(fmt.Sprintf("%dx%d", s.w, s.h), func(b *testing.B) {
			node := m2mtest.Encoder()
			info, err := m2mtest.Info(node, "/dev/video11")
			if err != nil {
				b.Fatal(err)
			}
			e, err := m2m.NewEncoder(info, m2m.Config{Width: s.w, Height: s.h, FPS: 30, Bitrate: 2_000_000})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			node.SetTracing(false)
			f := frames(b, s.w, s.h)()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Encode(f, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
