//go:build vmlabguest && linux

package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"roombox/internal/v4l2uapi"
)

// vidioc issues V4L2 request req on *arg: a raw ioctl, independent of hal/linux/v4l2's
// capture code; v4l2uapi derives each request number from its argument's size.
func vidioc[T any](fd int, req uint, arg *T) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(arg)))
	if errno != 0 {
		return errno
	}
	return nil
}

// openVivid opens the vivid video capture node among /dev/video*.
func openVivid(t *testing.T) int {
	t.Helper()
	nodes, _ := filepath.Glob("/dev/video*")
	var seen []string
	for _, n := range nodes {
		fd, err := unix.Open(n, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s: %v", n, err))
			continue
		}
		var c v4l2uapi.Capability
		if err := vidioc(fd, v4l2uapi.QueryCap, &c); err != nil {
			seen = append(seen, fmt.Sprintf("%s: QUERYCAP: %v", n, err))
			unix.Close(fd)
			continue
		}
		want := uint32(v4l2uapi.CapVideoCapture | v4l2uapi.CapStreaming)
		if cstr(c.Card[:]) == "vivid" && c.DeviceCaps&want == want {
			t.Logf("%s: driver %q card %q bus %q device caps %#x", n, cstr(c.Driver[:]), cstr(c.Card[:]), cstr(c.BusInfo[:]), c.DeviceCaps)
			t.Cleanup(func() { unix.Close(fd) })
			return fd
		}
		seen = append(seen, fmt.Sprintf("%s: card %q device caps %#x", n, cstr(c.Card[:]), c.DeviceCaps))
		unix.Close(fd)
	}
	t.Fatalf("no vivid capture node among %v: %v", nodes, seen)
	return -1
}

// capture is an mmap streaming capture: the way the real camera backend captures.
type capture struct {
	fd   int
	pix  v4l2uapi.PixFormat
	bufs [][]byte
}

// startCapture sets YUYV at w×h and fps frames a second (the driver may adjust both) and
// starts streaming into four mmap buffers; t.Cleanup stops it.
func startCapture(t *testing.T, fd int, w, h, fps uint32) *capture {
	t.Helper()
	f := v4l2uapi.Format{Type: v4l2uapi.BufTypeVideoCapture}
	*f.Pix() = v4l2uapi.PixFormat{Width: w, Height: h, PixelFormat: v4l2uapi.PixFmtYUYV, Field: v4l2uapi.FieldNone}
	if err := vidioc(fd, v4l2uapi.SFmt, &f); err != nil {
		t.Fatalf("S_FMT %dx%d YUYV: %v", w, h, err)
	}
	c := &capture{fd: fd, pix: *f.Pix()}
	if c.pix.PixelFormat != v4l2uapi.PixFmtYUYV || c.pix.Width != w || c.pix.Height != h {
		t.Fatalf("S_FMT %dx%d YUYV gave %dx%d %q", w, h, c.pix.Width, c.pix.Height, string(binaryLE(c.pix.PixelFormat)))
	}
	parm := v4l2uapi.StreamParm{Type: v4l2uapi.BufTypeVideoCapture}
	tpf := &parm.Capture().TimePerFrame
	*tpf = v4l2uapi.Fract{Numerator: 1, Denominator: fps}
	if err := vidioc(fd, v4l2uapi.SParm, &parm); err != nil {
		t.Fatalf("S_PARM 1/%d: %v", fps, err)
	}
	t.Logf("capturing %dx%d YUYV, %d bytes a line, %d a frame, interval %d/%d s",
		c.pix.Width, c.pix.Height, c.pix.BytesPerLine, c.pix.SizeImage, tpf.Numerator, tpf.Denominator)

	req := v4l2uapi.RequestBuffers{Count: 4, Type: v4l2uapi.BufTypeVideoCapture, Memory: v4l2uapi.MemoryMMAP}
	if err := vidioc(fd, v4l2uapi.ReqBufs, &req); err != nil || req.Count < 2 {
		t.Fatalf("REQBUFS 4: %v (%d buffers)", err, req.Count)
	}
	t.Cleanup(func() {
		typ := uint32(v4l2uapi.BufTypeVideoCapture)
		if err := vidioc(fd, v4l2uapi.StreamOff, &typ); err != nil {
			t.Errorf("STREAMOFF: %v", err)
		}
		for _, b := range c.bufs {
			unix.Munmap(b)
		}
		free := v4l2uapi.RequestBuffers{Type: v4l2uapi.BufTypeVideoCapture, Memory: v4l2uapi.MemoryMMAP}
		if err := vidioc(fd, v4l2uapi.ReqBufs, &free); err != nil {
			t.Errorf("REQBUFS 0: %v", err)
		}
	})
	for i := range req.Count {
		b := v4l2uapi.Buffer{Index: i, Type: v4l2uapi.BufTypeVideoCapture, Memory: v4l2uapi.MemoryMMAP}
		if err := vidioc(fd, v4l2uapi.QueryBuf, &b); err != nil {
			t.Fatalf("QUERYBUF %d: %v", i, err)
		}
		m, err := unix.Mmap(fd, int64(b.MemOffset()), int(b.Length), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatalf("mmap buffer %d: %v", i, err)
		}
		c.bufs = append(c.bufs, m)
		if err := vidioc(fd, v4l2uapi.QBuf, &b); err != nil {
			t.Fatalf("QBUF %d: %v", i, err)
		}
	}
	typ := uint32(v4l2uapi.BufTypeVideoCapture)
	if err := vidioc(fd, v4l2uapi.StreamOn, &typ); err != nil {
		t.Fatalf("STREAMON: %v", err)
	}
	return c
}

// next waits up to 10 s for a filled buffer; release hands it back to the driver.
func (c *capture) next(t *testing.T) (frame []byte, b v4l2uapi.Buffer, release func()) {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 10_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("poll for a frame: %v (ready %d)", err, n)
		}
		break
	}
	b = v4l2uapi.Buffer{Type: v4l2uapi.BufTypeVideoCapture, Memory: v4l2uapi.MemoryMMAP}
	if err := vidioc(c.fd, v4l2uapi.DQBuf, &b); err != nil {
		t.Fatalf("DQBUF: %v", err)
	}
	return c.bufs[b.Index][:b.BytesUsed], b, func() {
		if err := vidioc(c.fd, v4l2uapi.QBuf, &b); err != nil {
			t.Fatalf("QBUF %d: %v", b.Index, err)
		}
	}
}

// barLuma is the mean luma of each of vivid's eight colour bars, sampled in the middle half of
// each bar on the bottom eight rows: vivid draws lines of text from the top, which reach
// past the middle of a 320x180 frame.
func barLuma(pix v4l2uapi.PixFormat, frame []byte) [8]int {
	var out [8]int
	w := int(pix.Width)
	for bar := range 8 {
		x0, x1 := bar*w/8+w/32, (bar+1)*w/8-w/32
		sum, n := 0, 0
		for y := int(pix.Height) - 8; y < int(pix.Height); y++ {
			row := frame[y*int(pix.BytesPerLine):]
			for x := x0; x < x1; x++ {
				sum += int(row[2*x]) // YUYV: luma in every even byte
				n++
			}
		}
		out[bar] = sum / n
	}
	return out
}

// checkBars checks a frame shows vivid's default pattern, 75% colour bars: white, yellow,
// cyan, green, magenta, red, blue, black, so luma falls strictly from bar to bar, from near
// 75% white (180 in limited range) to black (16).
func checkBars(t *testing.T, pix v4l2uapi.PixFormat, frame []byte) {
	t.Helper()
	if len(frame) != int(pix.SizeImage) {
		t.Fatalf("frame of %d bytes, want %d", len(frame), pix.SizeImage)
	}
	l := barLuma(pix, frame)
	ok := l[0] > 150 && l[7] < 40
	for i := 1; i < 8; i++ {
		ok = ok && l[i] < l[i-1]-8
	}
	if !ok {
		t.Fatalf("bar luma %v: want 75%% colour bars, falling from white (~180) to black (~16)", l)
	}
}

// cpuTime measures CPU time spent for frames: in vivid's capture thread, which draws them
// (its /proc/PID/schedstat run time, in nanoseconds), and in this process, which dequeues and
// checks them (getrusage). Tick-based /proc/stat is too coarse for a few milliseconds a frame.
type cpuTime struct{ kthread, self time.Duration }

func readCPUTime(t *testing.T) cpuTime {
	t.Helper()
	var c cpuTime
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range comms {
		if comm, _ := os.ReadFile(p); strings.HasPrefix(string(comm), "vivid-") && strings.Contains(string(comm), "-vid-c") {
			data, err := os.ReadFile(filepath.Join(filepath.Dir(p), "schedstat"))
			if err != nil {
				t.Fatal(err)
			}
			ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
			if err != nil {
				t.Fatalf("%s/schedstat %q: %v", filepath.Dir(p), data, err)
			}
			c.kthread = time.Duration(ns)
		}
	}
	if c.kthread == 0 {
		t.Fatal("no vivid capture thread (vivid-NNN-vid-cap) while streaming")
	}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return c
}

func binaryLE(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

// captureRun captures n frames after two to settle, checks each one's size, the pattern in
// the first and last and that sequence numbers rise, and logs frame rate and CPU per frame.
func captureRun(t *testing.T, c *capture, n int) {
	t.Helper()
	for range 2 {
		_, _, release := c.next(t)
		release()
	}
	var start time.Time
	var cpu0 cpuTime
	var lastSeq uint32
	for i := range n {
		frame, b, release := c.next(t)
		if i == 0 {
			start, cpu0 = time.Now(), readCPUTime(t)
		} else if b.Sequence <= lastSeq {
			t.Fatalf("frame %d: sequence %d after %d", i, b.Sequence, lastSeq)
		}
		lastSeq = b.Sequence
		if i == 0 || i == n-1 {
			checkBars(t, c.pix, frame)
		} else if len(frame) != int(c.pix.SizeImage) {
			t.Fatalf("frame %d of %d bytes, want %d", i, len(frame), c.pix.SizeImage)
		}
		release()
	}
	elapsed, cpu := time.Since(start), readCPUTime(t)
	frames := float64(n - 1)
	size := fmt.Sprintf("%dx%d", c.pix.Width, c.pix.Height)
	t.Logf("figure: vivid_%s_fps=%.1f frames/s", size, frames/elapsed.Seconds())
	t.Logf("figure: vivid_%s_draw_cpu=%.2f ms/frame", size, (cpu.kthread-cpu0.kthread).Seconds()*1000/frames)
	t.Logf("figure: vivid_%s_capture_cpu=%.2f ms/frame", size, (cpu.self-cpu0.self).Seconds()*1000/frames)
}

// TestVividCapture captures 640x360 YUYV at 30 fps from vivid with mmap streaming and checks
// the colour bars.
func TestVividCapture(t *testing.T) {
	fd := openVivid(t)
	n := 150
	if testing.Short() {
		n = 30
	}
	captureRun(t, startCapture(t, fd, 640, 360, 30), n)
}

// TestVividSizes captures a few frames at every frame size vivid offers for YUYV.
func TestVividSizes(t *testing.T) {
	fd := openVivid(t)
	var sizes [][2]uint32
	for i := uint32(0); ; i++ {
		e := v4l2uapi.FrmSizeEnum{Index: i, PixelFormat: v4l2uapi.PixFmtYUYV}
		if err := vidioc(fd, v4l2uapi.EnumFrameSizes, &e); errors.Is(err, unix.EINVAL) {
			break
		} else if err != nil {
			t.Fatalf("ENUM_FRAMESIZES %d: %v", i, err)
		}
		if e.Type != v4l2uapi.FrmSizeTypeDiscrete {
			t.Fatalf("ENUM_FRAMESIZES: type %d, want discrete sizes from vivid's webcam input", e.Type)
		}
		sizes = append(sizes, [2]uint32{e.Width, e.Height})
	}
	if len(sizes) < 3 {
		t.Fatalf("vivid offers YUYV at %v, want several sizes", sizes)
	}
	for _, s := range sizes {
		t.Run(fmt.Sprintf("%dx%d", s[0], s[1]), func(t *testing.T) {
			captureRun(t, startCapture(t, fd, s[0], s[1], 30), 5)
		})
	}
}
