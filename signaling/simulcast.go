package signaling

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// VideoQuality names a simulcast layer as LiveKit does.
type VideoQuality int

// Qualities, lowest first.
const (
	QualityLow VideoQuality = iota
	QualityMedium
	QualityHigh
)

func (q VideoQuality) String() string {
	switch q {
	case QualityLow:
		return "low"
	case QualityMedium:
		return "medium"
	case QualityHigh:
		return "high"
	}
	return fmt.Sprintf("quality(%d)", int(q))
}

func (q VideoQuality) proto() livekit.VideoQuality {
	return [...]livekit.VideoQuality{livekit.VideoQuality_LOW, livekit.VideoQuality_MEDIUM, livekit.VideoQuality_HIGH}[q]
}

func qualityOf(p livekit.VideoQuality) (VideoQuality, bool) {
	switch p {
	case livekit.VideoQuality_LOW:
		return QualityLow, true
	case livekit.VideoQuality_MEDIUM:
		return QualityMedium, true
	case livekit.VideoQuality_HIGH:
		return QualityHigh, true
	}
	return 0, false
}

// VideoLayer is one encoding of a camera: its picture size and the bitrate its encoder
// aims for (announced to the server, which compares it with what it measures).
type VideoLayer struct {
	Width, Height uint32
	Bitrate       uint32 // bits per second
}

// layerNames are the quality and rid of each layer of a track with 1, 2 or 3 layers, as the
// LiveKit JS client names them (publishUtils.ts: rids q, h, f from the lowest, so two layers
// are q and h, LOW and MEDIUM; livekit-server's RidToSpatialLayer expects the same). One
// layer is today's plain track: no rid, HIGH.
var layerNames = [][]struct {
	q   VideoQuality
	rid string
}{
	{{QualityHigh, ""}},
	{{QualityLow, "q"}, {QualityMedium, "h"}},
	{{QualityLow, "q"}, {QualityMedium, "h"}, {QualityHigh, "f"}},
}

// VideoTrack is an H.264 camera track published as 1 to 3 simulcast layers: one RTP sender
// with one encoding (SSRC, rid) per layer. Each layer is its own LayerTrack, which the
// layer's encoder writes samples to and which delivers the RTCP about its SSRC (keyframe
// requests). With one layer it is a plain track, as TrackLocalStaticSample would send it.
type VideoTrack struct {
	id, streamID string
	layers       []*LayerTrack // lowest first
}

// ErrLayers is a VideoTrack asked for with no layer, more than three, or two of one size.
var ErrLayers = errors.New("signaling: a video track has 1 to 3 layers of distinct sizes")

// NewVideoTrack returns a track named id in stream streamID with the given layers, in any
// order: they are ranked by size, and named as layerNames says.
func NewVideoTrack(id, streamID string, layers ...VideoLayer) (*VideoTrack, error) {
	if len(layers) == 0 || len(layers) > len(layerNames) {
		return nil, fmt.Errorf("%w: got %d", ErrLayers, len(layers))
	}
	sorted := slices.Clone(layers)
	slices.SortFunc(sorted, func(a, b VideoLayer) int { return int(a.Width*a.Height) - int(b.Width*b.Height) })
	t := &VideoTrack{id: id, streamID: streamID}
	for i, l := range sorted {
		if l.Width == 0 || l.Height == 0 || i > 0 && l.Width*l.Height == sorted[i-1].Width*sorted[i-1].Height {
			return nil, fmt.Errorf("%w: %dx%d", ErrLayers, l.Width, l.Height)
		}
		n := layerNames[len(sorted)-1][i]
		t.layers = append(t.layers, newLayerTrack(t, l, n.q, n.rid))
	}
	return t, nil
}

// ID is the track's id (the cid the server matches).
func (t *VideoTrack) ID() string { return t.id }

// Layers returns the layers, lowest first.
func (t *VideoTrack) Layers() []*LayerTrack { return slices.Clone(t.layers) }

// Layer returns the layer of quality q, or nil.
func (t *VideoTrack) Layer(q VideoQuality) *LayerTrack {
	for _, l := range t.layers {
		if l.quality == q {
			return l
		}
	}
	return nil
}

// top is the largest layer: the track's size.
func (t *VideoTrack) top() *LayerTrack { return t.layers[len(t.layers)-1] }

// protoLayers describes the layers to the server.
func (t *VideoTrack) protoLayers() []*livekit.VideoLayer {
	out := make([]*livekit.VideoLayer, len(t.layers))
	for i, l := range t.layers {
		size := l.Layer()
		out[i] = &livekit.VideoLayer{Quality: l.quality.proto(), Width: size.Width, Height: size.Height,
			Bitrate: size.Bitrate, Rid: l.rid}
	}
	return out
}

// Resize gives the layers new sizes and bitrates after the camera's capture changed, in any
// order, as many as the track has (its encodings stay): a later join announces them, and
// Session.UpdateVideoTrack tells the room the track is in now.
func (t *VideoTrack) Resize(layers ...VideoLayer) error {
	if len(layers) != len(t.layers) {
		return fmt.Errorf("%w: %d sizes for a track of %d layers", ErrLayers, len(layers), len(t.layers))
	}
	sorted := slices.Clone(layers)
	slices.SortFunc(sorted, func(a, b VideoLayer) int { return int(a.Width*a.Height) - int(b.Width*b.Height) })
	for i, l := range sorted {
		if l.Width == 0 || l.Height == 0 || i > 0 && l.Width*l.Height == sorted[i-1].Width*sorted[i-1].Height {
			return fmt.Errorf("%w: %dx%d", ErrLayers, l.Width, l.Height)
		}
	}
	for i, l := range t.layers {
		l.mu.Lock()
		l.layer = sorted[i]
		l.mu.Unlock()
	}
	return nil
}

// rtpOutboundMTU bounds the RTP packets of a layer (LiveKit's Go SDK uses the same 1200
// bytes; pion's sample track 1200 too): room for SRTP and the extensions under any path MTU.
const rtpOutboundMTU = 1200

// LayerTrack is one layer of a VideoTrack: a TrackLocal (same id and stream as its
// siblings, its own rid) that packetizes H.264 samples. It is a media.SampleWriter.
//
// pion writes no MID or RID header extension for a track it did not make, and the SFU needs
// them to tell the layers' SSRCs apart (rids, not SSRCs, are in the SDP): every packet
// carries both until the SFU has sent a receiver report on the layer's SSRC, then neither, as
// LiveKit's Go SDK does (localtrack.go, ssrcAcked).
type LayerTrack struct {
	parent   *VideoTrack
	quality  VideoQuality
	rid      string
	ridBytes []byte // the RID extension's value

	mu       sync.Mutex
	layer    VideoLayer // its size: the camera's capture can change (Resize)
	bindings bindings
	mids     map[uint32]func() string // a publishing transceiver's media id, by the SSRC of this layer's encoding in it
	pkt      rtp.Packetizer
	hdr      rtp.Header // reused for every packet
	onRTCP   func([]rtcp.Packet)
}

var _ webrtc.TrackLocal = (*LayerTrack)(nil)

func newLayerTrack(parent *VideoTrack, l VideoLayer, q VideoQuality, rid string) *LayerTrack {
	return &LayerTrack{parent: parent, layer: l, quality: q, rid: rid, ridBytes: []byte(rid), mids: map[uint32]func() string{},
		pkt: rtp.NewPacketizer(rtpOutboundMTU, 0, 0, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)}
}

// Quality is the layer's quality; Layer its size and bitrate.
func (l *LayerTrack) Quality() VideoQuality { return l.quality }
func (l *LayerTrack) Layer() VideoLayer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.layer
}

// OnRTCP sets f to receive the RTCP the SFU sends about this layer's SSRC (PLI and FIR:
// this layer needs a keyframe; receiver reports). It runs on the session's reader
// goroutine; set it before publishing.
func (l *LayerTrack) OnRTCP(f func([]rtcp.Packet)) {
	l.mu.Lock()
	l.onRTCP = f
	l.mu.Unlock()
}

func (l *LayerTrack) ID() string                { return l.parent.id }
func (l *LayerTrack) RID() string               { return l.rid }
func (l *LayerTrack) StreamID() string          { return l.parent.streamID }
func (l *LayerTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeVideo }

// Bind takes the connection's H.264 payload type and extension ids, and its media id if
// the session announced this encoding (attach).
func (l *LayerTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	codec, b, err := l.bindings.bind(ctx, webrtc.MimeTypeH264)
	if err != nil {
		return codec, err
	}
	if mid := l.mids[b.ssrc]; mid != nil {
		b.mid = []byte(mid())
	}
	return codec, nil
}

// Unbind forgets the connection.
func (l *LayerTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bindings {
		if b.id == ctx.ID() {
			delete(l.mids, b.ssrc)
		}
	}
	return l.bindings.unbind(ctx)
}

// attach tells the layer the media id of the transceiver that sends it as ssrc. Called
// before negotiating, so Bind (after the answer, when pion assigned the mid) finds it; the
// mid is read then, as pion's Mid is an atomic load that takes no sender lock (Bind runs
// under the sender's).
func (l *LayerTrack) attach(ssrc uint32, tr *webrtc.RTPTransceiver) {
	l.mu.Lock()
	l.mids[ssrc] = tr.Mid
	l.mu.Unlock()
}

// WriteSample packetizes one Annex-B access unit and sends it on every connection; the RTP
// timestamp advances by the sample's duration.
func (l *LayerTrack) WriteSample(s media.Sample) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bindings) == 0 {
		return nil // not negotiated yet; the encoder's next IDR is what a subscriber needs
	}
	samples := uint32(s.Duration * 90000 / time.Second)
	var errs []error
	for _, p := range l.pkt.Packetize(s.Data, samples) {
		ext := l.hdr.Extensions[:0] // keep the backing array: no allocation per packet
		l.hdr = p.Header
		l.hdr.Extensions = ext
		if err := l.bindings.writeRTP(&l.hdr, p.Payload, l); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeExtensions puts MID and RID on the packet until the SFU has acknowledged the SSRC
// (extensionWriter).
func (l *LayerTrack) writeExtensions(b *binding, h *rtp.Header) error {
	if l.rid == "" || b.acked {
		return nil
	}
	if len(b.mid) > 0 {
		if err := b.setExtension(h, extMID, b.mid); err != nil {
			return err
		}
	}
	return b.setExtension(h, extRID, l.ridBytes)
}

// handleRTCP takes the RTCP read for this layer's encoding: a receiver report on a
// binding's SSRC ends the MID and RID there; then the layer's callback.
func (l *LayerTrack) handleRTCP(pkts []rtcp.Packet) {
	l.mu.Lock()
	for _, p := range pkts {
		if rr, ok := p.(*rtcp.ReceiverReport); ok {
			for _, r := range rr.Reports {
				for i := range l.bindings {
					if l.bindings[i].ssrc == r.SSRC {
						l.bindings[i].acked = true
					}
				}
			}
		}
	}
	f := l.onRTCP
	l.mu.Unlock()
	if f != nil {
		f(pkts)
	}
}

// stamping reports whether the layer's packets still carry MID and RID on a connection.
func (l *LayerTrack) stamping() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bindings {
		if l.rid != "" && !b.acked {
			return true
		}
	}
	return false
}
