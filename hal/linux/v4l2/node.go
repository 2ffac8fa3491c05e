package v4l2

import (
	"slices"
	"strings"
)

// V4L2 capability bits (videodev2.h).
const (
	capVideoCapture   = 0x00000001
	capVideoOutput    = 0x00000002
	capVideoM2MMplane = 0x00004000
	capVideoM2M       = 0x00008000
	capStreaming      = 0x04000000
	capDeviceCaps     = 0x80000000
)

// Node is what VIDIOC_QUERYCAP says about one /dev/video* node.
type Node struct {
	Path, Driver, Card, BusInfo string
	Capabilities                uint32 // of the whole device
	DeviceCaps                  uint32 // of this node, when Capabilities has DEVICE_CAPS
}

// caps is the node's own capabilities: a UVC camera's metadata node shares the device's
// VIDEO_CAPTURE in Capabilities but not in DeviceCaps.
func (n Node) caps() uint32 {
	if n.Capabilities&capDeviceCaps != 0 {
		return n.DeviceCaps
	}
	return n.Capabilities
}

// IsCapture reports whether the node is a single-planar streaming capture source: not a
// metadata node, not a memory-to-memory codec or scaler, not an output.
func (n Node) IsCapture() bool {
	c := n.caps()
	return c&capVideoCapture != 0 && c&capStreaming != 0 &&
		c&(capVideoOutput|capVideoM2M|capVideoM2MMplane) == 0
}

// feedOnly are drivers whose capture nodes deliver only what another node feeds them
// (the Pi's ISPs): they are not cameras, though their caps say capture.
var feedOnly = []string{"bcm2835-isp", "pispbe"}

// sourceOrder keeps the capture nodes that can be cameras, USB ones first (a box with a USB
// camera means it), each group in node order.
func sourceOrder(nodes []Node) []Node {
	var out []Node
	for _, n := range nodes {
		if n.IsCapture() && !slices.Contains(feedOnly, n.Driver) {
			out = append(out, n)
		}
	}
	slices.SortStableFunc(out, func(a, b Node) int {
		ua, ub := strings.HasPrefix(a.BusInfo, "usb-"), strings.HasPrefix(b.BusInfo, "usb-")
		switch {
		case ua && !ub:
			return -1
		case ub && !ua:
			return 1
		}
		return 0
	})
	return out
}
