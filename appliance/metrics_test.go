package appliance_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"roombox/internal/testkit/previewtest"
	"roombox/internal/testkit/testwait"
)

// scrape reads the device's /metrics with the session and parses the text format.
func scrape(t *testing.T, s *previewtest.Session) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.Base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.HC.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s %s", resp.Status, buf.String())
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of the family's sample whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == want[i] && l.GetValue() == want[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("/metrics has no %s%v", name, want)
	return 0
}

func TestMetricsFollowDevice(t *testing.T) {
	base, code := runDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := previewtest.Login(ctx, base, code)
	if err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, s)
	for name, want := range map[string]float64{"roombox_mic_muted": 0, "roombox_led": 0, "roombox_camera_off": 0,
		"roombox_speaker_muted": 0, "roombox_video_bitrate_bps": 0, "roombox_joins_total": 0} {
		if got := value(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, fams, "roombox_state", "state", "unprovisioned"); got != 1 {
		t.Errorf(`roombox_state{state="unprovisioned"} = %v, want 1`, got)
	}
	if got := value(t, fams, "roombox_state", "state", "in-room"); got != 0 {
		t.Errorf(`roombox_state{state="in-room"} = %v, want 0`, got)
	}
	if got := value(t, fams, "roombox_state_transitions_total"); got < 1 {
		t.Errorf("roombox_state_transitions_total = %v, want the start's transition", got)
	}
	if c := value(t, fams, "roombox_temperature_celsius"); c < 40 || c > 60 {
		t.Errorf("roombox_temperature_celsius = %v, want the sim sensor's 40..60", c)
	}
	if cpu := value(t, fams, "roombox_cpu_seconds_total"); cpu <= 0 {
		t.Errorf("roombox_cpu_seconds_total = %v, want the daemon's CPU time", cpu)
	}
	// The camera's layers (640x360 here: 640, 320 and 160 wide):
	// encoding before any room, at their configured targets, with no estimate yet.
	if got := value(t, fams, "roombox_bandwidth_estimate_bps"); got != 0 {
		t.Errorf("roombox_bandwidth_estimate_bps = %v outside a room, want 0", got)
	}
	for _, rid := range []string{"f", "h"} {
		if got := value(t, fams, "roombox_video_layer_sent", "rid", rid); got != 1 {
			t.Errorf(`roombox_video_layer_sent{rid=%q} = %v, want 1`, rid, got)
		}
		if got := value(t, fams, "roombox_video_layer_target_bps", "rid", rid); got <= 0 {
			t.Errorf(`roombox_video_layer_target_bps{rid=%q} = %v, want its configured target`, rid, got)
		}
	}
	testwait.For(t, "frames counted on both layers", 20*time.Second, func() bool {
		fams := scrape(t, s)
		return value(t, fams, "roombox_video_layer_frames_total", "rid", "f") > 0 && value(t, fams, "roombox_video_layer_frames_total", "rid", "h") > 0
	})

	for _, target := range []string{"mic", "camera", "speaker"} {
		if err := s.Call(ctx, "POST", "/api/mute", map[string]any{"target": target, "muted": true}, nil); err != nil {
			t.Fatal(err)
		}
	}
	fams = scrape(t, s)
	for _, name := range []string{"roombox_mic_muted", "roombox_led", "roombox_camera_off", "roombox_speaker_muted"} {
		if got := value(t, fams, name); got != 1 {
			t.Errorf("after muting everything via the API, %s = %v, want 1", name, got)
		}
	}
	if err := s.Call(ctx, "POST", "/api/mute", map[string]any{"target": "mic", "muted": false}, nil); err != nil {
		t.Fatal(err)
	}
	fams = scrape(t, s)
	if got := value(t, fams, "roombox_mic_muted"); got != 0 {
		t.Errorf("after unmuting the mic, roombox_mic_muted = %v, want 0", got)
	}
}
