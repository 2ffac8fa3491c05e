package m2m_test

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"roombox/hal/linux/m2m"
)

// TestRealDevice encodes the sim test pattern on a real encoder node and writes the
// stream for ffprobe/ffplay; see docs/HARDWARE.md. It needs a Raspberry Pi 4 (or another
// board with a V4L2 M2M H.264 encoder) and runs only when ROOMBOX_M2M_DEVICE names the
// node, e.g. /dev/video11. No VM has such a driver, so nothing else exercises this path
// against a kernel; the model in m2mtest stands in for it everywhere else.
//
//	ROOMBOX_M2M_DEVICE   the node ("auto" to let Find choose)
//	ROOMBOX_M2M_OUT      output file, default roombox-m2m.h264 in the working directory
//	ROOMBOX_M2M_FRAMES   frames to encode, default 300 (10 s at 30 fps)
//	ROOMBOX_M2M_SIZE     WIDTHxHEIGHT, default 1280x720
func TestRealDevice(t *testing.T) {
	dev := os.Getenv("ROOMBOX_M2M_DEVICE")
	if dev == "" {
		t.Skip("ROOMBOX_M2M_DEVICE is not set (a board with a V4L2 M2M H.264 encoder is needed)")
	}
	paths := []string{dev}
	if dev == "auto" {
		paths = nil
	}
	info, err := m2m.Finder{Paths: paths}.Find(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("encoder: %+v", info)
	w, h := 1280, 720
	if s := os.Getenv("ROOMBOX_M2M_SIZE"); s != "" {
		ws, hs, _ := bytes.Cut([]byte(s), []byte("x"))
		if w, err = strconv.Atoi(string(ws)); err == nil {
			h, err = strconv.Atoi(string(hs))
		}
		if err != nil {
			t.Fatalf("ROOMBOX_M2M_SIZE %q: %v", s, err)
		}
	}
	n := 300
	if s := os.Getenv("ROOMBOX_M2M_FRAMES"); s != "" {
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	out := os.Getenv("ROOMBOX_M2M_OUT")
	if out == "" {
		out = "roombox-m2m.h264"
	}
	const keyInterval = 60
	e, err := m2m.NewEncoder(info, m2m.Config{Width: w, Height: h, FPS: 30, Bitrate: 2_000_000, KeyInterval: keyInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	next := frames(t, w, h)
	var stream bytes.Buffer
	keys, empty := 0, 0
	for i := range n {
		if i == n/2 {
			if err := e.SetBitrate(1_000_000); err != nil {
				t.Fatal(err)
			}
		}
		force := i == keyInterval/2
		ef, err := e.Encode(next(), force)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(ef.Data) == 0 {
			empty++
			continue
		}
		if ef.Keyframe {
			keys++
			// SPS right after the start code (joined header mode, repeated per IDR):
			// profile_idc 66, constraint_set1, level_idc.
			sps := bytes.Index(ef.Data, []byte{0, 0, 1, 0x67})
			if sps < 0 || len(ef.Data) < sps+7 {
				t.Fatalf("frame %d: key frame without an SPS", i)
			}
			if p, c := ef.Data[sps+4], ef.Data[sps+5]; p != 66 || c&0x40 == 0 {
				t.Errorf("frame %d: SPS profile_idc %d constraints %#x, want constrained baseline", i, p, c)
			}
		}
		if i == 0 && !ef.Keyframe {
			t.Fatalf("first frame is not a key frame")
		}
		stream.Write(ef.Data)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, stream.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d frames, %d key frames, %d dropped, %d bytes in %s", n, keys, empty, stream.Len(), out)
	if want := n/keyInterval + 1; keys < want {
		t.Errorf("%d key frames, want at least %d (one per %d frames and one forced)", keys, want, keyInterval)
	}
}
