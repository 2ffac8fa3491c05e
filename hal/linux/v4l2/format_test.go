package v4l2

import (
	"errors"
	"slices"
	"testing"

	"roombox/hal"
)

func discrete(f PixelFormat, w, h int, fps ...float64) Offer {
	o := Offer{Format: f, Width: w, Height: h}
	for _, r := range fps {
		o.Rates = append(o.Rates, RateRange{r, r})
	}
	return o
}

func TestChoose(t *testing.T) {
	// A typical USB camera: raw YUYV is fast only when small, MJPEG is fast at every size.
	uvc := []Offer{
		discrete(YUYV, 640, 360, 30, 15),
		discrete(YUYV, 1280, 720, 10, 5),
		discrete(MJPEG, 640, 360, 30),
		discrete(MJPEG, 1280, 720, 30, 15),
		discrete(fourcc("H264"), 1280, 720, 30), // not converted: never chosen
	}
	for _, tc := range []struct {
		name   string
		offers []Offer
		want   Want
		mode   Mode
	}{
		{"raw beats MJPEG at the same size and rate", uvc, Want{Width: 640, Height: 360, FPS: 30}, Mode{YUYV, 640, 360, 30}},
		{"MJPEG when raw is too slow at the size", uvc, Want{Width: 1280, Height: 720, FPS: 30}, Mode{MJPEG, 1280, 720, 30}},
		{"raw at a lower rate when asked for it", uvc, Want{Width: 1280, Height: 720, FPS: 10}, Mode{YUYV, 1280, 720, 10}},
		{"a forced format", uvc, Want{Format: MJPEG, Width: 640, Height: 360, FPS: 30}, Mode{MJPEG, 640, 360, 30}},
		{"NV12 first among equals", []Offer{discrete(YUYV, 640, 360, 30), discrete(NV12, 640, 360, 30)},
			Want{Width: 640, Height: 360, FPS: 30}, Mode{NV12, 640, 360, 30}},
		{"nearest size", []Offer{discrete(YUYV, 320, 240, 30), discrete(YUYV, 800, 600, 30), discrete(YUYV, 640, 480, 30)},
			Want{Width: 640, Height: 360, FPS: 30}, Mode{YUYV, 640, 480, 30}},
		{"fast enough beats exact size", []Offer{discrete(YUYV, 1920, 1080, 5), discrete(YUYV, 1280, 720, 30)},
			Want{Width: 1920, Height: 1080, FPS: 30}, Mode{YUYV, 1280, 720, 30}},
		{"nearest rate when none is fast enough", []Offer{discrete(YUYV, 640, 360, 5, 15, 10)},
			Want{Width: 640, Height: 360, FPS: 30}, Mode{YUYV, 640, 360, 15}},
		{"a rate from a range", []Offer{{Format: YUYV, Width: 640, Height: 360, Rates: []RateRange{{1, 60}}}},
			Want{Width: 640, Height: 360, FPS: 25}, Mode{YUYV, 640, 360, 25}},
		{"unlisted rates take the wanted one", []Offer{{Format: NV12, Width: 640, Height: 360}},
			Want{Width: 640, Height: 360, FPS: 30}, Mode{NV12, 640, 360, 30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Choose(tc.offers, tc.want)
			if err != nil || m != tc.mode {
				t.Errorf("Choose = %v, %v; want %v", m, err, tc.mode)
			}
		})
	}
}

func TestChooseNothingUsable(t *testing.T) {
	for name, offers := range map[string][]Offer{
		"none":        nil,
		"only H.264":  {discrete(fourcc("H264"), 640, 360, 30)},
		"not forced":  {discrete(YUYV, 640, 360, 30)},
		"empty sizes": {discrete(NV12, 0, 0, 30)},
	} {
		want := Want{Width: 640, Height: 360, FPS: 30}
		if name == "not forced" {
			want.Format = NV12
		}
		if m, err := Choose(offers, want); !errors.Is(err, ErrNoFormat) {
			t.Errorf("%s: Choose = %v, %v; want ErrNoFormat", name, m, err)
		}
	}
}

func TestSizeRangeCandidate(t *testing.T) {
	for _, tc := range []struct {
		r            SizeRange
		w, h         int
		wantW, wantH int
	}{
		{SizeRange{640, 640, 0, 480, 480, 0}, 1280, 720, 640, 480},   // discrete
		{SizeRange{16, 1920, 16, 16, 1080, 8}, 641, 359, 640, 360},   // stepwise, snapped
		{SizeRange{16, 1920, 16, 16, 1080, 16}, 4000, 1, 1920, 16},   // clamped
		{SizeRange{48, 1900, 64, 48, 1080, 1}, 1900, 720, 1840, 720}, // top of range off the step grid
		{SizeRange{}, 800, 600, 800, 600},                            // continuous: anything
	} {
		if w, h := tc.r.candidate(tc.w, tc.h); w != tc.wantW || h != tc.wantH {
			t.Errorf("%+v.candidate(%d, %d) = %d, %d; want %d, %d", tc.r, tc.w, tc.h, w, h, tc.wantW, tc.wantH)
		}
	}
}

func TestPixelFormatString(t *testing.T) {
	if s := YUYV.String(); s != "YUYV" {
		t.Errorf("YUYV = %q", s)
	}
	if s := PixelFormat(0x01020304).String(); s != "PixelFormat(0x01020304)" {
		t.Errorf("unprintable = %q", s)
	}
}

func TestCaptureNodes(t *testing.T) {
	const (
		metaCapture = 0x00800000
		readWrite   = 0x01000000
	)
	nodes := []Node{
		{Path: "/dev/video0", Driver: "unicam", BusInfo: "platform:fe801000.csi", Capabilities: capDeviceCaps | capVideoCapture | metaCapture | capStreaming, DeviceCaps: capVideoCapture | capStreaming},
		{Path: "/dev/video1", Driver: "unicam", BusInfo: "platform:fe801000.csi", Capabilities: capDeviceCaps | capVideoCapture | metaCapture | capStreaming, DeviceCaps: metaCapture | capStreaming},
		{Path: "/dev/video10", Driver: "bcm2835-codec", Capabilities: capDeviceCaps | capVideoM2MMplane | capStreaming, DeviceCaps: capVideoM2MMplane | capStreaming},
		{Path: "/dev/video13", Driver: "bcm2835-isp", Capabilities: capDeviceCaps | capVideoCapture | capStreaming, DeviceCaps: capVideoCapture | capStreaming},
		{Path: "/dev/video20", Driver: "vim2m", Capabilities: capVideoCapture | capVideoOutput | capStreaming}, // old M2M: no DEVICE_CAPS
		{Path: "/dev/video21", Driver: "old", Capabilities: capVideoCapture | readWrite},                       // read() only
		{Path: "/dev/video30", Driver: "uvcvideo", BusInfo: "usb-0000:01:00.0-1.3", Capabilities: capDeviceCaps | capVideoCapture | metaCapture | capStreaming, DeviceCaps: capVideoCapture | capStreaming},
		{Path: "/dev/video31", Driver: "uvcvideo", BusInfo: "usb-0000:01:00.0-1.3", Capabilities: capDeviceCaps | capVideoCapture | metaCapture | capStreaming, DeviceCaps: metaCapture | capStreaming},
	}
	var got []string
	for _, n := range sourceOrder(nodes) {
		got = append(got, n.Path)
	}
	if want := []string{"/dev/video30", "/dev/video0"}; !slices.Equal(got, want) {
		t.Errorf("camera nodes = %v, want %v", got, want)
	}
}

// Modes lists each size once at its fastest rate in any format this package converts,
// smallest first; formats it cannot convert are left out.
func TestModes(t *testing.T) {
	got := Modes([]Offer{
		{Format: YUYV, Width: 1280, Height: 720, Rates: []RateRange{{10, 10}, {5, 5}}},
		{Format: MJPEG, Width: 1280, Height: 720, Rates: []RateRange{{30, 30}}},
		{Format: YUYV, Width: 640, Height: 480, Rates: []RateRange{{1, 29.97}}},
		{Format: fourcc("H264"), Width: 1920, Height: 1080, Rates: []RateRange{{30, 30}}},
		{Format: NV12, Width: 640, Height: 360},
	})
	want := []hal.VideoFormat{{Width: 640, Height: 360, FPS: 30}, {Width: 640, Height: 480, FPS: 30}, {Width: 1280, Height: 720, FPS: 30}}
	if !slices.Equal(got, want) {
		t.Fatalf("Modes = %v, want %v", got, want)
	}
}
