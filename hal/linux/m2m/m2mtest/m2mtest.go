// Package m2mtest is a model of a V4L2 stateful H.264 encoder node at the ioctl seam
// (m2m.Device), after dev-encoder.rst and, where they differ, the Raspberry Pi's
// bcm2835-codec: its state machine (Initialization, Encoding, Drain, Stopped, Reset),
// buffer ownership, bytesperline alignment, controls, errors (EBUSY, EINVAL, ERANGE,
// EAGAIN, EPIPE) and a CMA budget. It "encodes" a frame into a recognisable Annex-B
// access unit whose slice carries the frame's number, timestamp, bitrate and a CRC of the
// picture it read, so tests can check order, key frames, headers and the copied pixels.
//
// The model is synchronous: the "hardware" runs only inside Poll, as if the caller's wait
// were the time it takes, so DQBUF before a Poll finds nothing (EAGAIN), as it would on
// a real device.
package m2mtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"roombox/hal/linux/m2m"
	"roombox/internal/v4l2uapi"
)

// Node is one /dev/video* node.
type Node struct {
	Driver, Card, BusInfo string
	Caps                  uint32   // device_caps
	CaptureFormats        []uint32 // ENUM_FMT CAPTURE_MPLANE
	OutputFormats         []uint32 // ENUM_FMT OUTPUT_MPLANE
	// OpenErr, when set, is what opening the node fails with.
	OpenErr error
	// CMA is the contiguous memory all buffers of the node may take, in bytes; 0 is no
	// limit. REQBUFS beyond it fails with ENOMEM, as vb2-dma-contig does.
	CMA int
	// MinBuffers is the fewest buffers REQBUFS gives a queue (the driver raises counts).
	MinBuffers uint32

	mu      sync.Mutex
	files   []*File
	trace   []string
	tracing bool
	faults  []Fault
	drops   []int            // input frame numbers the firmware skips
	maps    map[*byte]string // live mappings, by first byte, named "OUTPUT 0"
}

// Encoder returns the bcm2835-codec encoder node (/dev/video11 on a Raspberry Pi 4).
func Encoder() *Node {
	return &Node{
		Driver: "bcm2835-codec", Card: "bcm2835-codec-encode", BusInfo: "platform:bcm2835-codec",
		Caps:           v4l2uapi.CapVideoM2MMPlane | v4l2uapi.CapStreaming | 0x00200000, // EXT_PIX_FORMAT
		CaptureFormats: []uint32{v4l2uapi.PixFmtH264},
		OutputFormats:  []uint32{v4l2uapi.PixFmtYU12, fcc("YV12"), v4l2uapi.PixFmtNV12, fcc("NV21"), fcc("RGBP"), fcc("YUYV"), fcc("RGB3"), fcc("BGR4")},
		MinBuffers:     1,
		tracing:        true,
	}
}

// Decoder returns the bcm2835-codec decoder node (/dev/video10): H264 in, raw out.
func Decoder() *Node {
	n := Encoder()
	n.Card = "bcm2835-codec-decode"
	n.CaptureFormats, n.OutputFormats = []uint32{v4l2uapi.PixFmtYU12, v4l2uapi.PixFmtNV12}, []uint32{v4l2uapi.PixFmtH264, fcc("MPG2")}
	return n
}

// ISP returns the bcm2835-codec ISP node (/dev/video12): raw to raw.
func ISP() *Node {
	n := Encoder()
	n.Card = "bcm2835-codec-isp"
	n.CaptureFormats = []uint32{v4l2uapi.PixFmtYU12, v4l2uapi.PixFmtNV12, fcc("RGB3")}
	return n
}

// Camera returns a single-planar capture node such as a webcam or vivid.
func Camera() *Node {
	return &Node{
		Driver: "uvcvideo", Card: "USB Camera", BusInfo: "usb-0000:01:00.0-1.3",
		Caps: 0x00000001 | v4l2uapi.CapStreaming, OutputFormats: nil, CaptureFormats: []uint32{fcc("YUYV")},
		tracing: true,
	}
}

func fcc(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// Devices maps paths to nodes; its Open is an m2m.OpenFunc.
type Devices map[string]*Node

// Open opens the node at path, ENOENT when there is none.
func (d Devices) Open(path string) (m2m.Device, error) {
	n, ok := d[path]
	if !ok {
		return nil, unix.ENOENT
	}
	return n.Open(path)
}

// Paths lists the device paths in order.
func (d Devices) Paths() []string {
	ps := make([]string, 0, len(d))
	for p := range d {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// Info returns what m2m.Finder.Find gives for the encoder node at path, for tests that
// open an encoder without scanning.
func Info(n *Node, path string) (m2m.Info, error) {
	return m2m.Finder{Paths: []string{path}, Open: n.Open}.Find(context.Background())
}

// Open opens the node: a fresh encoding context, as each open of an M2M node is.
func (n *Node) Open(path string) (m2m.Device, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.OpenErr != nil {
		return nil, n.OpenErr
	}
	f := newFile(n)
	n.files = append(n.files, f)
	n.record("open " + path)
	return f, nil
}

// Fault makes calls whose trace name starts with Op ("S_FMT OUTPUT", "DQBUF CAPTURE",
// "STREAMON", "mmap", ...) fail with Err: after Skip matching calls, Count times (-1 for
// ever). A failed call changes nothing.
type Fault struct {
	Op    string
	Err   unix.Errno
	Skip  int
	Count int
}

// Inject adds a fault.
func (n *Node) Inject(f Fault) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = append(n.faults, f)
}

// Drop makes the firmware skip the given input frames (numbered from 0 since the stream
// started): their OUTPUT buffers come back, no CAPTURE buffer does.
func (n *Node) Drop(frames ...int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drops = append(n.drops, frames...)
}

// Trace returns the calls the node has seen, one line each, and starts a new trace.
func (n *Node) Trace() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.trace
	n.trace = nil
	return t
}

// SetTracing turns the trace on or off; off, the node allocates nothing per call.
func (n *Node) SetTracing(on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tracing = on
}

// Leaks describes what was opened and not released: open files and mappings. Empty when
// everything was let go.
func (n *Node) Leaks() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var l []string
	for i, f := range n.files {
		if !f.closed {
			l = append(l, fmt.Sprintf("file %d open", i))
		}
	}
	for _, name := range n.maps {
		l = append(l, name+" mapped")
	}
	slices.Sort(l)
	return strings.Join(l, "; ")
}

// Files returns the contexts opened so far, for inspecting their state.
func (n *Node) Files() []*File {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.files)
}

func (n *Node) record(s string) {
	if n.tracing {
		n.trace = append(n.trace, s)
	}
}

// fault returns the injected error for a call named op, consuming it.
func (n *Node) fault(op string) error {
	for i := range n.faults {
		f := &n.faults[i]
		if f.Count == 0 || !strings.HasPrefix(op, f.Op) {
			continue
		}
		if f.Skip > 0 {
			f.Skip--
			continue
		}
		if f.Count > 0 {
			f.Count--
		}
		return f.Err
	}
	return nil
}

func (n *Node) dropped(frame int) bool { return slices.Contains(n.drops, frame) }
