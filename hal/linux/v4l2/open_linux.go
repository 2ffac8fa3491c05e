package v4l2

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// Nodes lists the /dev/video* nodes with what QUERYCAP says of each, in node order; nodes
// that cannot be opened or queried are left out.
func Nodes() []Node {
	paths, _ := filepath.Glob("/dev/video*")
	slices.SortFunc(paths, func(a, b string) int { return nodeNumber(a) - nodeNumber(b) })
	var nodes []Node
	for _, p := range paths {
		fd, err := openNode(p)
		if err != nil {
			continue
		}
		n, err := queryCap(fd, p)
		unix.Close(fd)
		if err == nil {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

func nodeNumber(p string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(p, "/dev/video"))
	return n
}

// Open opens a camera as cfg says and starts it streaming. A camera that is not there
// (no capture node, or cfg.Device missing) is ErrNoDevice.
func Open(ctx context.Context, cfg Config) (*Camera, error) {
	cfg = cfg.withDefaults()
	if cfg.Device != "" {
		return openPath(cfg.Device, cfg)
	}
	nodes := sourceOrder(Nodes())
	if len(nodes) == 0 {
		return nil, ErrNoDevice
	}
	var errs []error
	for _, n := range nodes {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("v4l2: open: %w", err)
		}
		cam, err := openPath(n.Path, cfg)
		if err == nil {
			return cam, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func openPath(path string, cfg Config) (cam *Camera, err error) {
	fd, err := openNode(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
		return nil, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	node, err := queryCap(fd, path)
	if err != nil {
		return nil, err
	}
	if !node.IsCapture() {
		return nil, fmt.Errorf("%w: %s (%s) is not a video capture node", ErrNoDevice, path, node.Card)
	}

	w, err := webcam.Open(path)
	if err != nil {
		return nil, fmt.Errorf("v4l2: %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	offered := offers(w, cfg.want())
	mode, err := Choose(offered, cfg.want())
	if err != nil {
		return nil, fmt.Errorf("v4l2: %s (%s): %w", path, node.Card, err)
	}
	if _, _, _, err := w.SetImageFormat(webcam.PixelFormat(mode.Format), uint32(mode.Width), uint32(mode.Height)); err != nil {
		return nil, fmt.Errorf("v4l2: %s: set format %v: %w", path, mode, err)
	}
	l, err := getFormat(fd, path)
	if err != nil {
		return nil, err
	}
	if l.Format != mode.Format {
		return nil, fmt.Errorf("v4l2: %s: asked for %v, driver set %v", path, mode.Format, l.Format)
	}
	if l.Stride == 0 && l.Format != MJPEG { // a driver that leaves bytesperline out packs rows
		l.Stride = l.Width * map[PixelFormat]int{YUYV: 2, NV12: 1}[l.Format]
	}
	mode.Width, mode.Height = l.Width, l.Height
	// Not every driver takes a frame rate (S_PARM); it then streams at its own.
	_ = w.SetFramerate(float32(mode.FPS))
	if fps, err := w.GetFramerate(); err == nil {
		mode.FPS = float64(fps)
	}
	if err := w.SetBufferCount(uint32(cfg.Buffers)); err != nil {
		return nil, fmt.Errorf("v4l2: %s: %w", path, err)
	}
	if err := w.StartStreaming(); err != nil {
		return nil, fmt.Errorf("v4l2: %s: %w", path, err)
	}
	gone := func() bool {
		_, err := os.Stat(path)
		return errors.Is(err, fs.ErrNotExist)
	}
	cam = newCamera(path, webcamDevice{w}, mode, l, cfg.Clock, cfg.ReadTimeout, gone)
	cam.node, cam.modes = node, Modes(offered)
	return cam, nil
}

// offers lists what w can capture in the formats this package converts: every discrete
// size, and the size nearest want within each stepwise or continuous range.
func offers(w *webcam.Webcam, want Want) []Offer {
	var out []Offer
	for f := range w.GetSupportedFormats() {
		pf := PixelFormat(f)
		if !slices.Contains(preference, pf) {
			continue
		}
		for _, s := range w.GetSupportedFrameSizes(f) {
			r := SizeRange{
				MinWidth: int(s.MinWidth), MaxWidth: int(s.MaxWidth), StepWidth: int(s.StepWidth),
				MinHeight: int(s.MinHeight), MaxHeight: int(s.MaxHeight), StepHeight: int(s.StepHeight),
			}
			width, height := r.candidate(want.Width, want.Height)
			o := Offer{Format: pf, Width: width, Height: height}
			for _, fr := range w.GetSupportedFramerates(f, uint32(width), uint32(height)) {
				if fr.MinNumerator == 0 || fr.MaxNumerator == 0 {
					continue
				}
				// Intervals: the shortest (min) is the fastest rate.
				o.Rates = append(o.Rates, RateRange{
					Min: float64(fr.MaxDenominator) / float64(fr.MaxNumerator),
					Max: float64(fr.MinDenominator) / float64(fr.MinNumerator),
				})
			}
			out = append(out, o)
		}
	}
	return out
}

// webcamDevice adapts *webcam.Webcam to the device seam.
type webcamDevice struct{ *webcam.Webcam }

// Wait polls for whole seconds, rounding d up, as webcam.WaitForFrame takes seconds.
func (d webcamDevice) Wait(t time.Duration) error {
	err := d.WaitForFrame(uint32((t + time.Second - 1) / time.Second))
	var to *webcam.Timeout
	if errors.As(err, &to) {
		return errWaitTimeout
	}
	return err
}

func (d webcamDevice) Dequeue() ([]byte, uint32, error) { return d.GetFrame() }

func (d webcamDevice) Release(index uint32) error { return d.ReleaseFrame(index) }
