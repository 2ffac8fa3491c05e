package appliance_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"roombox/internal/testkit/roomboxtest"
	"strings"
	"testing"
	"time"

	"roombox/appliance"
	"roombox/appliance/store"
	"roombox/hal/sim"
	"roombox/internal/testkit/previewtest"
	"roombox/internal/testkit/testwait"
)

// urlCatcher passes the daemon's log on and reports the control page's URL.
type urlCatcher struct {
	slog.Handler
	url chan string
}

func (u urlCatcher) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "control page" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "url" {
				select {
				case u.url <- a.Value.String():
				default:
				}
			}
			return true
		})
	}
	return u.Handler.Handle(ctx, r)
}

// runDaemon runs the real daemon on the sim board in this process, unprovisioned, and
// returns its control page URL and setup code; the daemon stops when the test ends.
func runDaemon(t *testing.T) (base, code string) {
	t.Helper()
	dir := roomboxtest.SocketDir(t)
	catcher := urlCatcher{Handler: slog.NewTextHandler(t.Output(), nil), url: make(chan string, 1)}
	daemon := testwait.Go(t, "daemon", 20*time.Second, func(ctx context.Context) error {
		// 640x360: the preview is then the full-size layer, whose stamps decode as drawn.
		return appliance.Run(ctx, appliance.Options{Hal: "sim", StateDir: dir, HTTPAddr: "127.0.0.1:0", Logger: slog.New(catcher),
			Video: appliance.VideoOptions{Width: 640, Height: 360}})
	})
	select {
	case base = <-catcher.url:
	case <-daemon.Done():
		t.Fatalf("daemon exited: %v", daemon.Err())
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon never logged its control page URL")
	}
	// The first state is derived before the page is served.
	resp, err := http.Get(base + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct{ State string }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.State != "unprovisioned" {
		t.Fatalf("healthz right after start: state %q (%v), want unprovisioned", h.State, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, store.SetupCodeFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(base, "/"), strings.TrimSpace(string(b))
}

// TestPreviewFromDevice: a viewer on the LAN (here loopback) gets the device's own H.264 and
// Opus straight from it, without a room; the pictures are the sim camera's, advancing.
func TestPreviewFromDevice(t *testing.T) {
	base, code := runDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := previewtest.Login(ctx, base, code)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"type": "answer", "sdp": "v=0"}, `want "offer"`},
		{map[string]any{"type": "offer"}, `missing "sdp"`},
		{map[string]any{"type": "offer", "sdp": "garbage"}, "bad offer"},
		{map[string]any{"type": "offer", "sdp": "v=0", "ice": true}, `unknown field "ice"`},
	} {
		err := s.Call(ctx, "POST", "/api/preview", bad.body, nil)
		if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("preview offer %v: %v, want 400 naming %q", bad.body, err, bad.want)
		}
	}
	v, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	select {
	case <-v.Connected():
	case <-ctx.Done():
		t.Fatal("the preview never connected")
	}
	testwait.For(t, "30 access units and 50 audio packets", 20*time.Second, func() bool {
		_, audio := v.Packets()
		return v.AccessUnits() >= 30 && audio >= 50
	})

	frames, err := v.VideoFrames(640, 360)
	if err != nil {
		t.Fatal(err)
	}
	var prev uint64
	stamped := 0
	for i, f := range frames {
		st, err := sim.DecodeStamp(f.Gray, f.Width, f.Width, f.Height)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if stamped > 0 && st.Seq <= prev {
			t.Fatalf("frame %d: stamp seq %d after %d; frames must advance", i, st.Seq, prev)
		}
		prev = st.Seq
		stamped++
	}
	audio, err := v.Audio()
	if err != nil {
		t.Fatal(err)
	}
	if level := rms(audio[len(audio)-25:]); level < 0.05 {
		t.Errorf("preview audio RMS %.4f of full scale, want the sim microphone's tone", level)
	}

	// The preview is what leaves the device: camera off and mic muted show as such.
	for _, target := range []string{"camera", "mic"} {
		if err := s.Call(ctx, "POST", "/api/mute", map[string]any{"target": target, "muted": true}, nil); err != nil {
			t.Fatal(err)
		}
	}
	n0, _ := v.Packets()
	units := v.AccessUnits()
	testwait.For(t, "two more access units after the camera went off", 10*time.Second, func() bool {
		n, _ := v.Packets()
		return v.AccessUnits() >= units+2 && n > n0
	})
	if frames, err = v.VideoFrames(640, 360); err != nil {
		t.Fatal(err)
	}
	last := frames[len(frames)-1]
	if _, err := sim.DecodeStamp(last.Gray, last.Width, last.Width, last.Height); err == nil {
		t.Error("the preview still shows camera pixels after the camera went off")
	}
	if audio, err = v.Audio(); err != nil {
		t.Fatal(err)
	}
	if level := rms(audio[len(audio)-10:]); level > 0.001 {
		t.Errorf("preview audio RMS %.4f of full scale after the mic was muted, want silence", level)
	}

	// Previews are limited; the third is refused while two are open.
	v2, err := s.Watch(ctx)
	if err != nil {
		t.Fatalf("second preview: %v", err)
	}
	defer v2.Close()
	if v3, err := s.Watch(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		if v3 != nil {
			v3.Close()
		}
		t.Fatalf("third preview: %v, want 503", err)
	}

	// A viewer that closes its side frees its place: reloading the page twice must not
	// lock the preview out. The device learns of it from ICE consent alone (pion: disconnected
	// 5 s after the last check, failed after 25 s for a viewer that never connected, as v2 may
	// not have on a busy machine), so the wait is bounded by those, not by a guess.
	v2.Close()
	var v4 *previewtest.Viewer
	testwait.For(t, "a preview again once a viewer closed", 30*time.Second, func() bool {
		v4, err = s.Watch(ctx)
		return err == nil
	})
	v4.Close()
}

func rms(chunks []previewtest.AudioChunk) float64 {
	var sum float64
	n := 0
	for _, c := range chunks {
		for _, s := range c.PCM {
			f := float64(s) / 32768
			sum += f * f
		}
		n += len(c.PCM)
	}
	return math.Sqrt(sum / float64(max(n, 1)))
}
