// Package telemetry is what the device reports about itself: a live sample a second (send
// rates, loss, round trip, CPU, temperature) for the page's charts and /metrics, the
// Prometheus registry, and the ring of recent log lines the page shows.
package telemetry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"roombox/hal"
	"roombox/signaling"
)

// Sample is one second of the device as the page's charts and /metrics show it.
type Sample struct {
	At    time.Time `json:"at"`
	State string    `json:"state"`
	// VideoBps and AudioBps are the send rates into the room; 0 when not in one.
	VideoBps float64 `json:"video_bps"`
	AudioBps float64 `json:"audio_bps"`
	// PacketLoss is the share of packets the SFU reported lost in the last interval, 0..1.
	PacketLoss float64 `json:"packet_loss"`
	RTTSeconds float64 `json:"rtt_seconds"`
	// CPUPercent is the daemon's CPU use over the last interval, 100 = one core.
	CPUPercent float64 `json:"cpu_percent"`
	// TemperatureC is the board's temperature; null when it has no sensor or it failed.
	TemperatureC *float64 `json:"temperature_c"`
}

// Interval is how often the sampler samples and the page's charts move.
const Interval = time.Second

// Sampler takes a Sample every Interval. It is the only caller of Room.Stats,
// whose bitrates are per interval between calls.
type Sampler struct {
	SamplerConfig

	mu       sync.Mutex
	last     Sample
	prevCPU  float64
	prevAt   time.Time
	prevSent map[string]uint64 // packets sent, by track id, at the previous sample
	prevLost map[string]int64
}

// ProcCPUSeconds is the daemon's user+system CPU time from /proc/self/stat.
func ProcCPUSeconds() (float64, error) {
	p, err := procfs.Self()
	if err != nil {
		return 0, fmt.Errorf("telemetry: cpu: %w", err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("telemetry: cpu: %w", err)
	}
	return st.CPUTime(), nil
}

// SamplerConfig says where a Sampler reads the device.
type SamplerConfig struct {
	Now     func() time.Time
	State   func() string
	Stats   func() []signaling.TrackStats // returns nil while not in a room
	VideoID string                        // the local video track's id in stats
	Thermal hal.Thermal                   // nil: no sensor
	CPU     func() (float64, error)       // process CPU seconds
}

// NewSampler returns a Sampler; Run samples.
func NewSampler(cfg SamplerConfig) *Sampler { return &Sampler{SamplerConfig: cfg} }

// Latest returns the most recent sample (the zero sample before the first).
func (s *Sampler) Latest() Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) error {
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sample takes one sample.
func (s *Sampler) sample() {
	now := s.Now()
	ls := Sample{At: now, State: s.State()}
	if s.Thermal != nil {
		if c, err := s.Thermal.Celsius(); err == nil {
			ls.TemperatureC = &c
		}
	}
	var stats []signaling.TrackStats
	if s.Stats != nil {
		stats = s.Stats()
	}
	cpu, cpuErr := s.CPU()

	s.mu.Lock()
	defer s.mu.Unlock()
	if cpuErr == nil && !s.prevAt.IsZero() && now.After(s.prevAt) && cpu >= s.prevCPU {
		ls.CPUPercent = 100 * (cpu - s.prevCPU) / now.Sub(s.prevAt).Seconds()
	}
	if cpuErr == nil {
		s.prevCPU, s.prevAt = cpu, now
	}
	sent, lost := map[string]uint64{}, map[string]int64{}
	var dSent, dLost int64
	for _, st := range stats {
		if st.TrackID == s.VideoID {
			ls.VideoBps = st.BitrateBps
		} else {
			ls.AudioBps += st.BitrateBps
		}
		ls.RTTSeconds = max(ls.RTTSeconds, st.RTT.Seconds())
		sent[st.TrackID], lost[st.TrackID] = st.PacketsSent, st.PacketsLost
		if ps, ok := s.prevSent[st.TrackID]; ok && st.PacketsSent >= ps {
			dSent += int64(st.PacketsSent - ps)
			dLost += st.PacketsLost - s.prevLost[st.TrackID]
		}
	}
	if dSent > 0 && dLost > 0 {
		ls.PacketLoss = min(float64(dLost)/float64(dSent), 1)
	}
	s.prevSent, s.prevLost = sent, lost
	s.last = ls
}
