package signaling

import (
	"errors"
	"fmt"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// The machinery of the hand-written TrackLocals (AudioTrack, LayerTrack): pion's own tracks
// write one header to every connection, while the header extensions these tracks add are
// negotiated per connection (their ids differ between the room's publisher and the page's
// previews), so each connection a track is bound to is a binding with its own SSRC, payload
// type and extension ids.

// extension is a header extension a hand-written track writes.
type extension int

const (
	extAudioLevel extension = iota // RFC 6464, on microphone packets
	extMID                         // sdes:mid, on simulcast layers until the SFU knows the SSRC
	extRID                         // sdes:rtp-stream-id, likewise
	numExtensions
)

var extensionURIs = [numExtensions]string{sdp.AudioLevelURI, sdp.SDESMidURI, sdp.SDESRTPStreamIDURI}

// binding is one connection a track is bound to.
type binding struct {
	id    string // the TrackLocalContext's
	ssrc  uint32
	pt    webrtc.PayloadType
	ext   [numExtensions]uint8 // negotiated ids, 0 where not negotiated
	write webrtc.TrackLocalWriter
	mid   []byte // the transceiver's media id, where a simulcast layer needs it
	acked bool   // the SFU has reported on this SSRC: MID and RID are no longer needed
}

// bindings are a track's connections; the track's mutex guards them.
type bindings []binding

// bind adds the connection of ctx, taking its codec of type mime, and returns that codec.
func (bs *bindings) bind(ctx webrtc.TrackLocalContext, mime string) (webrtc.RTPCodecParameters, *binding, error) {
	var codec *webrtc.RTPCodecParameters
	for _, c := range ctx.CodecParameters() {
		if c.MimeType == mime {
			codec = &c
			break
		}
	}
	if codec == nil {
		return webrtc.RTPCodecParameters{}, nil, fmt.Errorf("signaling: %s track: %w", mime, webrtc.ErrUnsupportedCodec)
	}
	b := binding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), pt: codec.PayloadType, write: ctx.WriteStream()}
	for _, e := range ctx.HeaderExtensions() {
		for x, uri := range extensionURIs {
			if e.URI == uri {
				b.ext[x] = uint8(e.ID)
			}
		}
	}
	*bs = append(*bs, b)
	return *codec, &(*bs)[len(*bs)-1], nil
}

// unbind removes the connection of ctx.
func (bs *bindings) unbind(ctx webrtc.TrackLocalContext) error {
	for i, b := range *bs {
		if b.id == ctx.ID() {
			*bs = append((*bs)[:i], (*bs)[i+1:]...)
			return nil
		}
	}
	return webrtc.ErrUnbindFailed
}

// extensionWriter sets a track's extensions on a packet for one binding; an interface, not a
// func value, so a track passing itself allocates nothing per packet.
type extensionWriter interface {
	writeExtensions(*binding, *rtp.Header) error
}

// writeRTP writes one packet to every binding: h gets each binding's SSRC and payload type,
// and, from a clean slate, the extensions exts sets for that binding. The header is reused,
// so callers can keep one per track.
func (bs bindings) writeRTP(h *rtp.Header, payload []byte, exts extensionWriter) error {
	var errs []error
	for i := range bs {
		b := &bs[i]
		h.SSRC, h.PayloadType = b.ssrc, uint8(b.pt)
		h.Extension, h.Extensions = false, h.Extensions[:0]
		if err := exts.writeExtensions(b, h); err != nil {
			return err
		}
		if _, err := b.write.WriteRTP(h, payload); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setExtension sets extension x with value v on h if b negotiated it.
func (b *binding) setExtension(h *rtp.Header, x extension, v []byte) error {
	if b.ext[x] == 0 {
		return nil
	}
	if err := h.SetExtension(b.ext[x], v); err != nil {
		return fmt.Errorf("signaling: extension %s (id %d): %w", extensionURIs[x], b.ext[x], err)
	}
	return nil
}
