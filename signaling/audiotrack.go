package signaling

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// AudioTrack is the microphone's Opus track: one RTP packet per encoded frame, each
// carrying the RFC 6464 audio-level header extension (level and voice flag) on every
// connection that negotiated it, which is how livekit-server finds active speakers and
// clients draw speaking indicators. pion's TrackLocalStaticSample cannot carry a
// per-packet extension (its packetizer writes the headers), so this track writes its own:
// an Opus frame is one RTP payload as it is (RFC 7587), so there is nothing to packetize.
// LiveKit's Go SDK writes the same extension from its own TrackLocal.
//
// It is a media.SampleWriter and media.LevelWriter. Bound to any number of connections
// (the room's publisher, the page's previews), it writes each packet to all of them.
type AudioTrack struct {
	id, streamID string

	mu        sync.Mutex
	bindings  bindings
	hdr       rtp.Header // reused for every packet
	level     [1]byte    // the extension's payload
	withLevel bool       // the packet being written carries level
}

var _ webrtc.TrackLocal = (*AudioTrack)(nil)

// NewAudioTrack returns an unbound Opus track named id in stream streamID.
func NewAudioTrack(id, streamID string) *AudioTrack {
	var seed [6]byte
	_, _ = rand.Read(seed[:]) // never fails (crypto/rand)
	t := &AudioTrack{id: id, streamID: streamID}
	t.hdr.Version = 2
	t.hdr.SequenceNumber = binary.BigEndian.Uint16(seed[:2])
	t.hdr.Timestamp = binary.BigEndian.Uint32(seed[2:])
	return t
}

// Bind takes the connection's Opus payload type and audio-level extension id.
func (t *AudioTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	codec, _, err := t.bindings.bind(ctx, webrtc.MimeTypeOpus)
	return codec, err
}

// Unbind forgets the connection.
func (t *AudioTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bindings.unbind(ctx)
}

func (t *AudioTrack) ID() string                { return t.id }
func (t *AudioTrack) RID() string               { return "" }
func (t *AudioTrack) StreamID() string          { return t.streamID }
func (t *AudioTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

// WriteSample sends s without a level (media.SampleWriter).
func (t *AudioTrack) WriteSample(s media.Sample) error { return t.write(s, nil) }

// WriteLevelSample sends s with its level (-dBov, 0..127) and voice flag
// (media.LevelWriter).
func (t *AudioTrack) WriteLevelSample(s media.Sample, level uint8, voice bool) error {
	ext := rtp.AudioLevelExtension{Level: min(level, 127), Voice: voice}
	return t.write(s, &ext)
}

// writeExtensions sets the audio level on the packet being written (extensionWriter).
func (t *AudioTrack) writeExtensions(b *binding, h *rtp.Header) error {
	if !t.withLevel {
		return nil
	}
	return b.setExtension(h, extAudioLevel, t.level[:])
}

// write sends one Opus frame to every binding. Frames the encoder's DTX left unsent
// (s.PrevDroppedPackets) advance the timestamp, not the sequence number; the first packet
// after them starts a talkspurt (marker bit, RFC 7587).
func (t *AudioTrack) write(s media.Sample, ext *rtp.AudioLevelExtension) error {
	samples := uint32(s.Duration * 48000 / time.Second)
	t.mu.Lock()
	defer t.mu.Unlock()
	h := &t.hdr
	h.Timestamp += samples * uint32(s.PrevDroppedPackets)
	h.Marker = s.PrevDroppedPackets > 0
	if ext != nil {
		if _, err := ext.MarshalTo(t.level[:]); err != nil {
			return fmt.Errorf("signaling: audio track: %w", err)
		}
	}
	t.withLevel = ext != nil
	err := t.bindings.writeRTP(h, s.Data, t)
	h.SequenceNumber++
	h.Timestamp += samples
	return err
}
