package device

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"roombox/hal"
	"roombox/signaling"
)

// liveSample is one second of the device as the page's charts and /metrics show it.
type liveSample struct {
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

// liveInterval is how often the sampler samples and the page's charts move.
const liveInterval = time.Second

// liveSampler takes a liveSample every liveInterval. It is the only caller of Room.Stats,
// whose bitrates are per interval between calls.
type liveSampler struct {
	now     func() time.Time
	state   func() string
	stats   func() []signaling.TrackStats // nil while not in a room
	videoID string                        // the local video track's id in stats
	thermal hal.Thermal                   // nil: no sensor
	cpu     func() (float64, error)       // process CPU seconds

	mu       sync.Mutex
	last     liveSample
	prevCPU  float64
	prevAt   time.Time
	prevSent map[string]uint64 // packets sent, by track id, at the previous sample
	prevLost map[string]int64
}

// procCPUSeconds is the daemon's user+system CPU time from /proc/self/stat.
func procCPUSeconds() (float64, error) {
	p, err := procfs.Self()
	if err != nil {
		return 0, fmt.Errorf("device: cpu: %w", err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("device: cpu: %w", err)
	}
	return st.CPUTime(), nil
}

// latest returns the most recent sample (the zero sample before the first).
func (s *liveSampler) latest() liveSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// run samples until ctx ends.
func (s *liveSampler) run(ctx context.Context) error {
	t := time.NewTicker(liveInterval)
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

func (s *liveSampler) sample() {
	now := s.now()
	ls := liveSample{At: now, State: s.state()}
	if s.thermal != nil {
		if c, err := s.thermal.Celsius(); err == nil {
			ls.TemperatureC = &c
		}
	}
	var stats []signaling.TrackStats
	if s.stats != nil {
		stats = s.stats()
	}
	cpu, cpuErr := s.cpu()

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
		if st.TrackID == s.videoID {
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

// roomStats returns the send statistics of the room the device is in, nil if none.
func (d *daemon) roomStats() []signaling.TrackStats {
	if room := d.room.current(); room != nil {
		return room.Stats()
	}
	return nil
}
