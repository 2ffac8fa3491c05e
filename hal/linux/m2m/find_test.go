package m2m_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"roombox/hal/linux/m2m"
	"roombox/hal/linux/m2m/m2mtest"
)

// TestFind: among a Raspberry Pi's nodes the encoder is chosen by what it does, wherever
// it sits; with none, ErrNotFound names each node and why it was passed over.
func TestFind(t *testing.T) {
	locked := m2mtest.Encoder()
	locked.OpenErr = unix.EACCES
	devs := m2mtest.Devices{
		"/dev/video0":  m2mtest.Camera(),
		"/dev/video10": m2mtest.Decoder(),
		"/dev/video12": m2mtest.ISP(),
		"/dev/video13": locked,
		"/dev/video31": m2mtest.Encoder(),
	}
	nv12 := m2mtest.Encoder()
	nv12.OutputFormats = []uint32{0x3231564e}
	devs["/dev/video32"] = nv12

	f := m2m.Finder{Paths: devs.Paths(), Open: devs.Open}
	info, err := f.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != "/dev/video31" || info.Card != "bcm2835-codec-encode" || info.Driver != "bcm2835-codec" || info.Input != "YU12" {
		t.Fatalf("found %+v", info)
	}
	for p, n := range devs {
		if l := n.Leaks(); l != "" {
			t.Errorf("%s: %s", p, l)
		}
	}
	// The Info opens the node it names, through the Finder's OpenFunc.
	e, err := m2m.NewEncoder(info, testCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(devs["/dev/video31"].Files()); got != 2 {
		t.Fatalf("encoder node opened %d times, want 2 (probe, encoder)", got)
	}

	delete(devs, "/dev/video31")
	info, err = m2m.Finder{Paths: devs.Paths(), Open: devs.Open}.Find(context.Background())
	if err != nil || info.Path != "/dev/video32" || info.Input != "NV12" {
		t.Fatalf("NV12-only encoder: %+v, %v", info, err)
	}

	delete(devs, "/dev/video32")
	_, err = m2m.Finder{Paths: append(devs.Paths(), "/dev/video99"), Open: devs.Open}.Find(context.Background())
	if !errors.Is(err, m2m.ErrNotFound) {
		t.Fatalf("Find without an encoder: %v, want ErrNotFound", err)
	}
	for _, why := range []string{
		"/dev/video0 (USB Camera): not a streaming multi-planar M2M device",
		"/dev/video10 (bcm2835-codec-decode): CAPTURE offers no H264",
		"/dev/video12 (bcm2835-codec-isp): CAPTURE offers no H264",
		"/dev/video13: permission denied",
		"/dev/video99: no such file or directory",
	} {
		if !strings.Contains(err.Error(), why) {
			t.Errorf("error %q does not say %q", err, why)
		}
	}

	_, err = m2m.Finder{Paths: []string{}, Open: devs.Open}.Find(context.Background())
	if !errors.Is(err, m2m.ErrNotFound) {
		t.Fatalf("Find with no nodes: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Find(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Find with a cancelled context: %v", err)
	}
}

// TestFindHost scans this machine's real /dev/video* nodes (none, or vivid, or a webcam on
// a development machine; the encoder on a Raspberry Pi 4): Find either names an encoder
// or says ErrNotFound, never fails otherwise.
func TestFindHost(t *testing.T) {
	info, err := m2m.Find(context.Background())
	switch {
	case errors.Is(err, m2m.ErrNotFound):
		t.Logf("no encoder here: %v", err)
	case err != nil:
		t.Fatalf("Find: %v", err)
	case info.Path == "" || info.Input == "":
		t.Fatalf("Find: %+v", info)
	default:
		t.Logf("encoder: %+v", info)
	}
}
