package telemetry

import (
	"context"
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"roombox/control"
	"roombox/hal"
)

// Metrics is the daemon's Prometheus registry (its own, not the global default, so
// tests and several daemons in one process do not collide) and the counters events feed.
// Its methods are safe on a nil *Metrics, for code running without metrics.
type Metrics struct {
	reg           *prometheus.Registry
	transitions   prometheus.Counter
	joins         prometheus.Counter
	resumes       prometheus.Counter
	loginFailures prometheus.Counter
}

func NewMetrics() *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &Metrics{
		reg:           prometheus.NewRegistry(),
		transitions:   counter("roombox_state_transitions_total", "State machine transitions."),
		joins:         counter("roombox_joins_total", "Successful joins of the room (a full rejoin counts again)."),
		resumes:       counter("roombox_resumes_total", "Signal connections resumed without a rejoin."),
		loginFailures: counter("roombox_login_failures_total", "Failed control page and /metrics logins."),
	}
	// The Go runtime's own metrics (go_goroutines, go_memstats_*): a soak watches the
	// goroutine count for leaks, invariant 4's failure mode.
	m.reg.MustRegister(m.transitions, m.joins, m.resumes, m.loginFailures, collectors.NewGoCollector())
	return m
}

// observe adds the gauges that follow the device: its status, the live sample and the
// board's temperature, and the daemon's CPU time.
func (m *Metrics) Observe(c control.Controller, live func() Sample, thermal hal.Thermal) {
	m.reg.MustRegister(&statusCollector{c: c, live: live, thermal: thermal},
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roombox_cpu_seconds_total",
			Help: "CPU time (user and system) the daemon used."}, func() float64 {
			s, err := ProcCPUSeconds()
			if err != nil {
				return math.NaN()
			}
			return s
		}))
}

func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) StateChanged() {
	if m != nil {
		m.transitions.Inc()
	}
}

func (m *Metrics) Joined() {
	if m != nil {
		m.joins.Inc()
	}
}

func (m *Metrics) Resumed() {
	if m != nil {
		m.resumes.Inc()
	}
}

func (m *Metrics) LoginFailed() {
	if m != nil {
		m.loginFailures.Inc()
	}
}

var (
	descState   = prometheus.NewDesc("roombox_state", "1 for the device's current state, 0 for the others.", []string{"state"}, nil)
	descMic     = prometheus.NewDesc("roombox_mic_muted", "1 while the microphone is muted.", nil, nil)
	descCamera  = prometheus.NewDesc("roombox_camera_off", "1 while the camera is off.", nil, nil)
	descSpeaker = prometheus.NewDesc("roombox_speaker_muted", "1 while the speaker is muted.", nil, nil)
	descLED     = prometheus.NewDesc("roombox_led", "1 while the mute LED is on.", nil, nil)
	descVideo   = prometheus.NewDesc("roombox_video_bitrate_bps", "Video send bitrate into the room, bits per second.", nil, nil)
	descLoss    = prometheus.NewDesc("roombox_packet_loss_ratio", "Share of sent packets the SFU reported lost in the last second.", nil, nil)
	descRTT     = prometheus.NewDesc("roombox_rtt_seconds", "Round-trip time to the SFU.", nil, nil)
	descTemp    = prometheus.NewDesc("roombox_temperature_celsius", "Board temperature; absent without a sensor.", nil, nil)
	// The camera's layers; absent without a camera.
	descEstimate    = prometheus.NewDesc("roombox_bandwidth_estimate_bps", "Send-side bandwidth estimate the layers share (0 outside a room).", nil, nil)
	descLayerTarget = prometheus.NewDesc("roombox_video_layer_target_bps", "A simulcast layer's encoder target, bits per second.", []string{"rid"}, nil)
	descLayerSent   = prometheus.NewDesc("roombox_video_layer_sent", "1 while a simulcast layer is encoded and sent: someone receives it and the estimate carries it.", []string{"rid"}, nil)
	descLayerFrames = prometheus.NewDesc("roombox_video_layer_frames_total", "Frames a simulcast layer has encoded.", []string{"rid"}, nil)
)

var allStates = []control.State{control.StateUnprovisioned, control.StateConnecting, control.StateInRoom, control.StateReconnecting, control.StateError}

// statusCollector reports one Status and the latest live sample per scrape, so the gauges
// of a scrape agree with each other.
type statusCollector struct {
	c       control.Controller
	live    func() Sample
	thermal hal.Thermal
}

func (s *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descMic, descCamera, descSpeaker, descLED, descVideo, descLoss, descRTT, descTemp,
		descEstimate, descLayerTarget, descLayerSent, descLayerFrames} {
		ch <- d
	}
}

func (s *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := s.c.Status(context.Background())
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, state := range allStates {
		gauge(descState, b2f(st.State == state.String()), state.String())
	}
	gauge(descMic, b2f(st.MicMuted))
	gauge(descCamera, b2f(st.CameraOff))
	gauge(descSpeaker, b2f(st.SpeakerMute))
	gauge(descLED, b2f(st.LED))
	ls := s.live()
	gauge(descVideo, ls.VideoBps)
	gauge(descLoss, ls.PacketLoss)
	gauge(descRTT, ls.RTTSeconds)
	if s.thermal != nil {
		if c, err := s.thermal.Celsius(); err == nil {
			gauge(descTemp, c)
		}
	}
	if v := st.Video; v != nil {
		gauge(descEstimate, float64(v.TargetBitrate))
		for _, l := range v.Layers {
			gauge(descLayerTarget, float64(l.Bitrate), l.RID)
			gauge(descLayerSent, b2f(l.Sent), l.RID)
			ch <- prometheus.MustNewConstMetric(descLayerFrames, prometheus.CounterValue, float64(l.Frames), l.RID)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
