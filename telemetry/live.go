// Package telemetry is what the device reports about itself: a live sample a second (send
// rates, loss, round trip, CPU, temperature, the bandwidth estimate and the camera's layers)
// for the page's charts and /metrics, the Prometheus registry, and the ring of recent log
// lines the page shows.
package telemetry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"roombox/control"
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
	// EstimateBps is the send-side bandwidth estimate the camera's layers share; 0 out of a
	// room.
	EstimateBps float64 `json:"estimate_bps"`
	// Layers are the camera's simulcast layers, largest first; none without a camera.
	Layers []LayerSample `json:"layers,omitempty"`
}

// LayerSample is one simulcast layer of the camera in a Sample.
type LayerSample struct {
	RID string `json:"rid"`
	// TargetBps is the bitrate its encoder aims for, its share of the estimate.
	TargetBps float64 `json:"target_bps"`
	// Sent: it is encoded and sent (someone receives it and the estimate carries it, or the
	// page previews it); SentBps is what it sent into the room in the interval.
	Sent    bool    `json:"sent"`
	SentBps float64 `json:"sent_bps"`
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
	// Video reads the camera's estimate and layers (control.Status.Video); nil without a
	// camera.
	Video func() control.VideoStatus
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
	var video control.VideoStatus
	if s.Video != nil {
		video = s.Video()
	}

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
	var videoStats *signaling.TrackStats
	for _, st := range stats {
		if st.TrackID == s.VideoID {
			ls.VideoBps = st.BitrateBps
			videoStats = &st
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
	ls.EstimateBps = float64(video.TargetBitrate)
	for _, l := range video.Layers {
		ls.Layers = append(ls.Layers, LayerSample{RID: l.RID, TargetBps: float64(l.Bitrate), Sent: l.Sent,
			SentBps: layerRate(videoStats, l.RID, len(video.Layers))})
	}
	s.last = ls
}

// layerRate is the send rate of the camera's layer rid in the video track's stats (nil: not
// in a room): the encoding of that rid; with one layer, the track's, which is a plain track
// on the wire (no rid).
func layerRate(video *signaling.TrackStats, rid string, layers int) float64 {
	switch {
	case video == nil:
		return 0
	case layers == 1:
		return video.BitrateBps
	}
	for _, l := range video.Layers {
		if l.RID == rid {
			return l.BitrateBps
		}
	}
	return 0
}
