package signaling

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/stats"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// H264 is the one video codec the device publishes: constrained baseline, level 3.1,
// packetization-mode 1 — decoded by every browser and accepted by livekit-server v1.13.5.
// Tracks must be created with this capability so pion's fmtp matching binds them.
var H264 = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeH264,
	ClockRate:   90000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
}

// Opus is the microphone codec: 48 kHz, in-band FEC.
var Opus = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeOpus,
	ClockRate:   48000,
	Channels:    2,
	SDPFmtpLine: "minptime=10;useinbandfec=1",
}

var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
	{Type: "transport-cc"},
}

// statsHolder receives the stats interceptor's getter when the peer connection is made.
type statsHolder struct {
	mu     sync.Mutex
	getter stats.Getter
}

func (h *statsHolder) get(ssrc uint32) *stats.Stats {
	h.mu.Lock()
	g := h.getter
	h.mu.Unlock()
	if g == nil {
		return nil
	}
	return g.Get(ssrc)
}

// newAPI builds a pion API for one peer connection. The publisher registers only what it
// sends, so the server cannot pick another profile; the subscriber also accepts what
// browsers commonly publish. The interceptors are pion's defaults, with the stats
// interceptor registered here so its per-stream sender statistics can be read (pion's
// GetStats reports receivers only), and, with est (the publisher), congestion control.
func newAPI(serverURL string, subscriber bool, st *statsHolder, est *bwe, bw Bandwidth) (*webrtc.API, error) {
	m, err := mediaEngine(subscriber)
	if err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if est != nil { // the publisher: congestion control first, so it is innermost (bwe.go)
		if err := est.register(m, reg, bw); err != nil {
			return nil, err
		}
	}
	statsFactory, err := stats.NewInterceptor()
	if err != nil {
		return nil, fmt.Errorf("signaling: stats interceptor: %w", err)
	}
	statsFactory.OnNewPeerConnection(func(_ string, g stats.Getter) {
		st.mu.Lock()
		st.getter = g
		st.mu.Unlock()
	})
	reg.Add(statsFactory)
	if err := errors.Join(
		configureNack(m, reg),
		webrtc.ConfigureRTCPReports(reg),
		webrtc.ConfigureSimulcastExtensionHeaders(m),
		webrtc.ConfigureTWCCSender(m, reg),
	); err != nil {
		return nil, fmt.Errorf("signaling: interceptors: %w", err)
	}
	se := settingEngine(isLoopbackURL(serverURL))
	// A media path that has received nothing for 3 s (consent checks go out every second,
	// so several were lost) is taken as lost, and the session resumes with an ICE restart
	// (peers.go); pion's defaults (5 s, failed at 25 s) would keep a dead path for longer.
	se.SetICETimeouts(iceDisconnectedTimeout, iceFailedTimeout, iceKeepaliveInterval)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(se)), nil
}

// NewPreviewAPI builds a pion API for a direct peer connection with a viewer on the LAN
// (the control page's preview): the publisher's codecs, so the viewer gets exactly the
// samples the room gets, NACK and RTCP reports, and host candidates only (no STUN or TURN
// is configured). With loopback, only loopback candidates are gathered: the viewer is on
// this host and nothing leaves it.
func NewPreviewAPI(loopback bool) (*webrtc.API, error) {
	m, err := mediaEngine(false)
	if err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if err := errors.Join(configureNack(m, reg), webrtc.ConfigureRTCPReports(reg)); err != nil {
		return nil, fmt.Errorf("signaling: preview interceptors: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(settingEngine(loopback))), nil
}

// nackHistory is how many of its last packets each sent video stream keeps to answer
// NACKs with. pion's default, 1024, costs 1.5 MB a stream once full (a 1460-byte buffer per
// packet), three layers 4.7 MB of the daemon's heap. libwebrtc keeps its packets for
// max(1 s, 3 RTTs) (RtpPacketHistory); livekit-server asks for a lost packet at most 5 times,
// the last about 20 ms + 5.8 RTTs after the loss (mediatransportutil's nack queue: backoff
// x1.25 from one RTT, capped at 400 ms). 512 packets are 2.7 s of a 720p layer at 1.7 Mbit/s
// (~190 packets a second at 1200 bytes) and 1.4 s at 1080p's 3.3 Mbit/s.
const nackHistory = 512

// configureNack is webrtc.ConfigureNack with nackHistory.
func configureNack(m *webrtc.MediaEngine, reg *interceptor.Registry) error {
	return webrtc.ConfigureNackWithOptions(m, reg, nil, nack.ResponderSize(nackHistory))
}

// mediaEngine registers Opus and the device's H.264 profile, and for a subscriber also what
// browsers commonly publish.
func mediaEngine(subscriber bool) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	audio := webrtc.RTPCodecParameters{RTPCodecCapability: Opus, PayloadType: 111}
	audio.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "transport-cc"}}
	if err := m.RegisterCodec(audio, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("signaling: register opus: %w", err)
	}
	// The audio level on every microphone packet (AudioTrack): livekit-server's active
	// speakers come from it.
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("signaling: register audio level extension: %w", err)
	}
	video := []webrtc.RTPCodecParameters{{RTPCodecCapability: H264, PayloadType: 125}}
	if subscriber {
		video = append(video,
			webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
			}, PayloadType: 108},
			webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
			}, PayloadType: 96},
		)
	}
	for _, c := range video {
		c.RTCPFeedback = videoFeedback
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("signaling: register %s: %w", c.MimeType, err)
		}
	}
	return m, nil
}

// settingEngine: no multicast DNS queries on the room's LAN; with loopbackOnly (a peer on
// this host: development, tests) only loopback candidates, so ICE pairs there and nothing
// leaves the machine.
// ICE timeouts of the room's peer connections (newAPI).
const (
	iceDisconnectedTimeout = 3 * time.Second
	iceFailedTimeout       = 10 * time.Second
	iceKeepaliveInterval   = time.Second
)

func settingEngine(loopbackOnly bool) webrtc.SettingEngine {
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if loopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	return se
}

func isLoopbackURL(serverURL string) bool {
	u, err := url.Parse(serverURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
