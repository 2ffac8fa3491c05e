//go:build linux

package browser

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"roombox/control"
	"testing"
	"time"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
)

// receiverServer serves receiver.html and the official livekit-client's UMD build (from
// node_modules) on loopback: the page a person in the room would open.
func receiverServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /receiver.html", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "receiver.html")
	})
	mux.HandleFunc("GET /livekit-client.umd.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "node_modules/livekit-client/dist/livekit-client.umd.js")
	})
	srv := httptest.NewServer(mux) // 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

// startSender runs a livekit-server and `roombox run` (with extra flags) provisioned into room
// on it as identity, and waits until the box is in the room.
func startSender(t *testing.T, room, identity string, extra ...string) (srv *lktest.Server, bin, stateDir string) {
	t.Helper()
	srv = lktest.Start(t)
	bin = roomboxtest.Binary(t)
	stateDir = roomboxtest.StateDir(t)
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--url", srv.URL,
		"--token", lktest.Token(t, room, identity, lktest.TokenTTL(time.Hour)))
	roomboxtest.Start(t, bin, stateDir, extra...).WaitHealthy(t)
	roomboxtest.WaitStatus(t, bin, stateDir, "in-room", 30*time.Second, func(s control.Status) bool { return s.State == "in-room" })
	return srv, bin, stateDir
}

// TestReceivingClient: a browser in the room, with the official livekit-client, receives the
// device's camera: the video element decodes pictures and frames advance.
func TestReceivingClient(t *testing.T) {
	const room, identity = "browser-receive", "roombox-sender"
	srv, bin, stateDir := startSender(t, room, identity)
	drv := startDriver(t)
	web := receiverServer(t)

	q := url.Values{
		"url":   {srv.URL},
		"token": {lktest.Token(t, room, "browser-receiver", lktest.TokenTTL(time.Hour))},
		"from":  {identity},
	}
	drv.do("open", map[string]any{"page": "rx", "url": web.URL + "/receiver.html?" + q.Encode()})
	drv.do("waitText", map[string]any{"page": "rx", "selector": "#rx-state", "pattern": "^receiving$", "timeout": 30000})
	r := drv.do("video", map[string]any{"page": "rx", "selector": "video#remote", "frames": 10, "timeout": 30000})
	var w, h, frames int
	r.field(t, "width", &w)
	r.field(t, "height", &h)
	r.field(t, "frames", &frames)
	version, _ := drv.read("rx", "#rx-version")
	t.Logf("livekit-client %s receives %s's camera: %dx%d, %d frames advanced", version, identity, w, h, frames)
	if w <= 0 || h <= 0 || frames < 10 {
		t.Fatalf("receiver: %dx%d and %d frames advanced, want a picture and 10 frames", w, h, frames)
	}
	roomboxtest.WaitStatus(t, bin, stateDir, "the browser among the device's participants", 10*time.Second, func(s control.Status) bool {
		for _, p := range s.Participants {
			if p == "browser-receiver" {
				return true
			}
		}
		return false
	})
	drv.screenshot("rx", "receiving-client")
	drv.do("close", map[string]any{"page": "rx"})
}

// TestAdaptiveStreamPicksLayer (issue 13, must-show 1): two browsers with the official
// livekit-client and adaptiveStream receive the box's camera (720p in three layers) in
// elements of different sizes: the server sends the 160x90 element a layer at most 640 wide
// and the 1280x720 element the full 1280x720 layer, as each one's decoded size shows.
func TestAdaptiveStreamPicksLayer(t *testing.T) {
	const room, identity = "browser-adaptive", "roombox-sender"
	srv, bin, stateDir := startSender(t, room, identity)
	drv := startDriver(t)
	web := receiverServer(t)
	for _, v := range []struct {
		page, w, h, want string
	}{{"small", "160", "90", "^(160x90|320x180|640x360)$"}, {"big", "1280", "720", "^1280x720$"}} {
		q := url.Values{
			"url":      {srv.URL},
			"token":    {lktest.Token(t, room, "browser-"+v.page, lktest.TokenTTL(time.Hour))},
			"from":     {identity},
			"adaptive": {"1"},
			"w":        {v.w},
			"h":        {v.h},
		}
		drv.do("open", map[string]any{"page": v.page, "url": web.URL + "/receiver.html?" + q.Encode()})
		drv.do("waitText", map[string]any{"page": v.page, "selector": "#rx-state", "pattern": "^receiving$", "timeout": 30000})
		// The decoded size settles once the server switched to the layer the element asked for.
		drv.do("waitText", map[string]any{"page": v.page, "selector": "#rx-size", "pattern": v.want, "timeout": 30000})
		size, _ := drv.read(v.page, "#rx-size")
		t.Logf("a %sx%s element with adaptiveStream receives %s", v.w, v.h, size)
	}
	st := roomboxtest.MustStatus(t, bin, stateDir)
	t.Logf("the box's layers: %+v", st.Video.Layers)
	drv.screenshot("big", "adaptive-big")
}
