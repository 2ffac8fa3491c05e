package m2m

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"roombox/internal/v4l2uapi"
)

// Info describes an encoder node Find chose.
type Info struct {
	Path    string
	Driver  string // e.g. "bcm2835-codec"
	Card    string // e.g. "bcm2835-codec-encode"
	BusInfo string
	// Input is the raw format the encoder is fed: "YU12" (I420) when the node takes it,
	// else "NV12".
	Input string

	open OpenFunc // how NewEncoder reopens Path; the Finder's
}

// Budget is how many pixels a second the encoder handles over all its instances, 0 when
// not known. bcm2835-codec (the VideoCore's encoder on a Pi up to the 4) is specified for
// 1080p30 in total: its instances share it.
func (i Info) Budget() int {
	if i.Driver == "bcm2835-codec" {
		return 1920 * 1088 * 30
	}
	return 0
}

// Finder scans V4L2 nodes for an encoder. The zero value scans /dev/video* with real
// file descriptors.
type Finder struct {
	Paths []string // nodes to try, in order; nil means every /dev/video*
	Open  OpenFunc // nil means OpenFile
}

// Find returns the first /dev/video* node that is an M2M H.264 encoder, or ErrNotFound.
func Find(ctx context.Context) (Info, error) { return Finder{}.Find(ctx) }

// Find returns the first node among f.Paths that is a streaming multi-planar M2M device
// whose CAPTURE queue offers H264 and whose OUTPUT queue offers YU12 or NV12. A node that
// cannot be opened or queried is passed over; the error names each node and why.
func (f Finder) Find(ctx context.Context) (Info, error) {
	open := f.Open
	if open == nil {
		open = OpenFile
	}
	paths := f.Paths
	if paths == nil {
		paths, _ = filepath.Glob(devicePaths) // the pattern is valid
	}
	var why []string
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return Info{}, fmt.Errorf("m2m: find: %w", err)
		}
		info, err := probe(open, p)
		if err == nil {
			info.open = open
			return info, nil
		}
		why = append(why, err.Error())
	}
	if len(why) == 0 {
		return Info{}, fmt.Errorf("%w: no V4L2 nodes", ErrNotFound)
	}
	return Info{}, fmt.Errorf("%w among %d nodes: %s", ErrNotFound, len(why), strings.Join(why, "; "))
}

// probe says whether the node at path is an encoder, and if not why.
func probe(open OpenFunc, path string) (Info, error) {
	d, err := open(path)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", path, err)
	}
	defer d.Close()
	var c v4l2uapi.Capability
	if err := d.Ioctl(v4l2uapi.QueryCap, unsafe.Pointer(&c)); err != nil {
		return Info{}, fmt.Errorf("%s: QUERYCAP: %w", path, err)
	}
	info := Info{
		Path:    path,
		Driver:  v4l2uapi.CString(c.Driver[:]),
		Card:    v4l2uapi.CString(c.Card[:]),
		BusInfo: v4l2uapi.CString(c.BusInfo[:]),
	}
	caps := c.Capabilities
	if caps&v4l2uapi.CapDeviceCaps != 0 {
		caps = c.DeviceCaps
	}
	const want = v4l2uapi.CapVideoM2MMPlane | v4l2uapi.CapStreaming
	if caps&want != want {
		return Info{}, fmt.Errorf("%s (%s): not a streaming multi-planar M2M device (caps %#x)", path, info.Card, caps)
	}
	capFmts, err := formats(d, v4l2uapi.BufTypeCaptureMPlane)
	if err != nil {
		return Info{}, fmt.Errorf("%s (%s): ENUM_FMT CAPTURE: %w", path, info.Card, err)
	}
	if !slices.Contains(capFmts, v4l2uapi.PixFmtH264) {
		return Info{}, fmt.Errorf("%s (%s): CAPTURE offers no H264", path, info.Card)
	}
	outFmts, err := formats(d, v4l2uapi.BufTypeOutputMPlane)
	if err != nil {
		return Info{}, fmt.Errorf("%s (%s): ENUM_FMT OUTPUT: %w", path, info.Card, err)
	}
	switch {
	case slices.Contains(outFmts, v4l2uapi.PixFmtYU12):
		info.Input = "YU12"
	case slices.Contains(outFmts, v4l2uapi.PixFmtNV12):
		info.Input = "NV12"
	default:
		return Info{}, fmt.Errorf("%s (%s): OUTPUT offers neither YU12 nor NV12", path, info.Card)
	}
	return info, nil
}

// formats lists the pixel formats a queue offers; ENUM_FMT ends the list with EINVAL.
func formats(d Device, typ uint32) ([]uint32, error) {
	var out []uint32
	for i := uint32(0); ; i++ {
		desc := v4l2uapi.FmtDesc{Index: i, Type: typ}
		err := d.Ioctl(v4l2uapi.EnumFmt, unsafe.Pointer(&desc))
		if errors.Is(err, unix.EINVAL) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, desc.PixelFormat)
	}
}
