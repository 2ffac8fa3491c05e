package telemetry

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

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
