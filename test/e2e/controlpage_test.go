package e2e

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"roombox/control"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/previewtest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
)

// TestControlPageInRoom drives the real binary's control page while it is in a real room:
// login with the setup code, the live websocket's network figures, /metrics, the log tail
// and the preview, next to the room's own subscriber.
func TestControlPageInRoom(t *testing.T) {
	srv := lktest.Start(t)
	bin := roomboxtest.Binary(t)
	stateDir := roomboxtest.StateDir(t)
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--url", srv.URL,
		"--token", lktest.Token(t, room, deviceIdentity))
	sub := joinSubscriber(t, srv.URL, lktest.Token(t, room, "watcher"))
	d := roomboxtest.Start(t, bin, stateDir)
	pageURL, code := d.PageURL(t), d.SetupCode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := previewtest.Login(ctx, pageURL, code)
	if err != nil {
		t.Fatal(err)
	}

	testwait.For(t, "the page's status to show the device in its room with the watcher", 20*time.Second, func() bool {
		var st control.Status
		if err := s.Call(ctx, "GET", "/api/status", nil, &st); err != nil {
			t.Fatal(err)
		}
		return st.State == "in-room" && len(st.Participants) == 1 && st.Participants[0] == "watcher"
	})

	// The live websocket reports the send rate and round trip the SFU sees.
	wsURL := "ws" + strings.TrimPrefix(s.Base, "http") + "/api/live"
	hdr := http.Header{"Origin": {s.Base}}
	for _, c := range s.HC.Jar.Cookies(mustParse(t, s.Base+"/")) {
		hdr.Add("Cookie", c.String())
	}
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, hdr)
	if err != nil {
		t.Fatalf("live websocket: %v", err)
	}
	defer conn.Close()
	var sample struct {
		State        string   `json:"state"`
		VideoBps     float64  `json:"video_bps"`
		RTTSeconds   float64  `json:"rtt_seconds"`
		CPUPercent   float64  `json:"cpu_percent"`
		TemperatureC *float64 `json:"temperature_c"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for sample.State != "in-room" || sample.VideoBps < 100e3 || sample.RTTSeconds <= 0 || sample.CPUPercent <= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("live samples never showed video being sent with a round trip: last %+v", sample)
		}
		if err := conn.ReadJSON(&sample); err != nil {
			t.Fatal(err)
		}
	}
	if sample.TemperatureC == nil {
		t.Error("live samples lack the sim board's temperature")
	}

	// /metrics with basic auth, as a scraper would.
	req, _ := http.NewRequestWithContext(ctx, "GET", s.Base+"/metrics", nil)
	req.SetBasicAuth("admin", code)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	_, _ = io.Copy(&body, resp.Body)
	resp.Body.Close()
	for _, want := range []string{`roombox_state{state="in-room"} 1`, "roombox_joins_total 1", "roombox_mic_muted 0"} {
		if !strings.Contains(body.String(), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The log tail has the state machine's transitions, and never the setup code.
	var logs struct{ Lines []string }
	if err := s.Call(ctx, "GET", "/api/logs", nil, &logs); err != nil {
		t.Fatal(err)
	}
	tail := strings.Join(logs.Lines, "\n")
	if !strings.Contains(tail, "connecting -> in-room") {
		t.Errorf("log tail lacks the join:\n%s", tail)
	}
	if strings.Contains(tail, code) {
		t.Error("the log tail shows the setup code")
	}

	// The preview works while in the room: the same samples go to both.
	v, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	testwait.For(t, "10 access units in the preview", 20*time.Second, func() bool { return v.AccessUnits() >= 10 })
	if _, err := v.VideoFrames(simWidth, simHeight); err != nil {
		t.Fatal(err)
	}
	aus, _, _ := sub.snapshot()
	if len(aus) == 0 {
		t.Error("the room's subscriber got no video while the preview was open")
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
