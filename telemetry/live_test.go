package telemetry

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"roombox/control"
	"roombox/signaling"
)

func TestLogRingKeepsTheLastLines(t *testing.T) {
	var console bytes.Buffer
	ring := NewLogRing(3)
	log := ring.Wrap(slog.New(slog.NewTextHandler(&console, nil)))
	if got := ring.Lines(); len(got) != 0 {
		t.Fatalf("empty ring: %q", got)
	}
	for i := range 5 {
		log.Info("line", "n", i)
	}
	got := ring.Lines()
	if len(got) != 3 || !strings.HasSuffix(got[0], "n=2") || !strings.HasSuffix(got[2], "n=4") {
		t.Fatalf("ring lines %q, want n=2..4 oldest first", got)
	}
	if n := strings.Count(console.String(), "msg=line"); n != 5 {
		t.Errorf("the console got %d lines, want all 5", n)
	}
}

func TestLiveSamplerDeltas(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	now, cpu := t0, 1.0
	var stats []signaling.TrackStats
	s := NewSampler(SamplerConfig{
		Now: func() time.Time { return now }, State: func() string { return "in-room" },
		Stats: func() []signaling.TrackStats { return stats }, VideoID: "camera",
		CPU: func() (float64, error) { return cpu, nil },
	})
	stats = []signaling.TrackStats{
		{TrackID: "camera", PacketsSent: 100, PacketsLost: 0},
		{TrackID: "microphone", PacketsSent: 50, PacketsLost: 0},
	}
	s.sample()
	if ls := s.Latest(); ls.CPUPercent != 0 || ls.PacketLoss != 0 || ls.TemperatureC != nil {
		t.Fatalf("first sample %+v: no deltas yet, no sensor", ls)
	}
	now, cpu = t0.Add(time.Second), 1.5
	stats = []signaling.TrackStats{
		{TrackID: "camera", PacketsSent: 250, PacketsLost: 9, BitrateBps: 800e3, RTT: 20 * time.Millisecond},
		{TrackID: "microphone", PacketsSent: 100, PacketsLost: 1, BitrateBps: 32e3, RTT: 30 * time.Millisecond},
	}
	s.sample()
	ls := s.Latest()
	if ls.CPUPercent != 50 {
		t.Errorf("CPU %v %%, want 50 (0.5 s of CPU in 1 s)", ls.CPUPercent)
	}
	if ls.PacketLoss != 0.05 {
		t.Errorf("packet loss %v, want 0.05 (10 of 200 sent in the interval)", ls.PacketLoss)
	}
	if ls.VideoBps != 800e3 || ls.AudioBps != 32e3 || ls.RTTSeconds != 0.03 || ls.State != "in-room" {
		t.Errorf("sample %+v", ls)
	}
	// Leaving the room: zeros, not stale numbers.
	now, stats = t0.Add(2*time.Second), nil
	s.sample()
	if ls := s.Latest(); ls.VideoBps != 0 || ls.PacketLoss != 0 || ls.RTTSeconds != 0 {
		t.Errorf("sample out of a room %+v, want zeros", ls)
	}
}

// TestLiveSamplerVideoLayers: a sample carries the bandwidth estimate and each of the camera's
// layers, largest first: its encoder's target, whether it is sent, and what its encoding sent
// (matched by rid; a one-layer camera's is the plain track's, which has no rid on the wire).
func TestLiveSamplerVideoLayers(t *testing.T) {
	var stats []signaling.TrackStats
	var video control.VideoStatus
	s := NewSampler(SamplerConfig{
		Now: time.Now, State: func() string { return "in-room" }, VideoID: "camera",
		Stats: func() []signaling.TrackStats { return stats }, Video: func() control.VideoStatus { return video },
		CPU: func() (float64, error) { return 0, nil },
	})
	video = control.VideoStatus{TargetBitrate: 1_200_000, Layers: []control.VideoLayer{
		{RID: "f", Bitrate: 700_000, Sent: false, Wanted: true},
		{RID: "h", Bitrate: 450_000, Sent: true},
		{RID: "q", Bitrate: 160_000, Sent: true},
	}}
	stats = []signaling.TrackStats{{TrackID: "camera", BitrateBps: 600e3, Layers: []signaling.LayerStats{
		{RID: "q", BitrateBps: 150e3}, {RID: "h", BitrateBps: 450e3}, {RID: "f"},
	}}}
	s.sample()
	ls := s.Latest()
	want := []LayerSample{
		{RID: "f", TargetBps: 700e3, Sent: false, SentBps: 0},
		{RID: "h", TargetBps: 450e3, Sent: true, SentBps: 450e3},
		{RID: "q", TargetBps: 160e3, Sent: true, SentBps: 150e3},
	}
	if ls.EstimateBps != 1.2e6 || ls.VideoBps != 600e3 || !slices.Equal(ls.Layers, want) {
		t.Errorf("sample: estimate %v, video %v, layers %+v; want 1.2e6, 6e5, %+v", ls.EstimateBps, ls.VideoBps, ls.Layers, want)
	}

	// Out of the room: no estimate, layers still listed with nothing sent.
	stats, video.TargetBitrate = nil, 0
	s.sample()
	if ls := s.Latest(); ls.EstimateBps != 0 || len(ls.Layers) != 3 || ls.Layers[1].SentBps != 0 {
		t.Errorf("sample out of a room: estimate %v, layers %+v; want 0 and three layers sending nothing", ls.EstimateBps, ls.Layers)
	}

	// One layer: a plain track, its rate the track's.
	video = control.VideoStatus{TargetBitrate: 900_000, Layers: []control.VideoLayer{{RID: "q", Bitrate: 800_000, Sent: true}}}
	stats = []signaling.TrackStats{{TrackID: "camera", BitrateBps: 780e3, Layers: []signaling.LayerStats{{BitrateBps: 780e3}}}}
	s.sample()
	if ls := s.Latest(); !slices.Equal(ls.Layers, []LayerSample{{RID: "q", TargetBps: 800e3, Sent: true, SentBps: 780e3}}) {
		t.Errorf("one layer: %+v, want q sending 780e3 of 800e3", ls.Layers)
	}

	// No camera: neither.
	s.Video = nil
	s.sample()
	if ls := s.Latest(); ls.EstimateBps != 0 || ls.Layers != nil {
		t.Errorf("no camera: estimate %v, layers %+v; want none", ls.EstimateBps, ls.Layers)
	}
}
