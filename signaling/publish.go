package signaling

import (
	"context"
	"fmt"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// Publish announces tracks to the room, adds them to the publisher connection and
// negotiates it once for all of them.
func (s *Session) Publish(ctx context.Context, tracks ...LocalTrack) ([]Publication, error) {
	s.negotiate.Lock()
	defer s.negotiate.Unlock()
	pubs := make([]Publication, 0, len(tracks))
	for _, lt := range tracks {
		info, err := s.addTrack(ctx, lt)
		if err != nil {
			return nil, err
		}
		tr, err := s.addTransceiver(lt)
		if err != nil {
			return nil, fmt.Errorf("signaling: add %s track: %w", lt.Source, err)
		}
		var encs []encoding // one per simulcast layer, lowest first
		for _, e := range tr.Sender().GetParameters().Encodings {
			encs = append(encs, encoding{rid: e.RID, ssrc: uint32(e.SSRC)})
		}
		s.mu.Lock()
		s.encodings[lt.id()] = encs
		s.mu.Unlock()
		pubs = append(pubs, Publication{Track: trackInfo(info), Sender: tr.Sender(), Video: lt.Video})
	}
	if err := s.offerPublisher(ctx, nil); err != nil {
		return nil, err
	}
	return pubs, nil
}

// addTransceiver adds lt's sender: one encoding, or one per simulcast layer (lowest first,
// the order of the SDP's rids), each layer told its encoding's SSRC and transceiver.
func (s *Session) addTransceiver(lt LocalTrack) (*webrtc.RTPTransceiver, error) {
	init := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}
	if lt.Video == nil {
		return s.pub.AddTransceiverFromTrack(lt.Track, init)
	}
	layers := lt.Video.layers
	tr, err := s.pub.AddTransceiverFromTrack(layers[0], init)
	if err != nil {
		return nil, err
	}
	for _, l := range layers[1:] {
		if err := tr.Sender().AddEncoding(l); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.rid, err)
		}
	}
	for _, enc := range tr.Sender().GetParameters().Encodings {
		for _, l := range layers {
			if l.rid == enc.RID {
				l.attach(uint32(enc.SSRC), tr)
			}
		}
	}
	return tr, nil
}

func (s *Session) addTrack(ctx context.Context, lt LocalTrack) (*livekit.TrackInfo, error) {
	cid := lt.id()
	req := &livekit.AddTrackRequest{
		Cid: cid, Name: lt.Name, Type: livekit.TrackType_AUDIO, Source: lt.Source.proto(), Muted: lt.Muted,
		Width: lt.Width, Height: lt.Height,
	}
	switch {
	case lt.Video != nil:
		// As LiveKit's Go SDK announces simulcast (localparticipant.go): the track's size is
		// the largest layer's, the layers lowest first, again in the one simulcast codec.
		top := lt.Video.top().Layer()
		layers := lt.Video.protoLayers()
		req.Type, req.Width, req.Height, req.Layers = livekit.TrackType_VIDEO, top.Width, top.Height, layers
		req.SimulcastCodecs = []*livekit.SimulcastCodec{{Codec: "h264", Cid: cid, Layers: layers,
			VideoLayerMode: livekit.VideoLayer_ONE_SPATIAL_LAYER_PER_STREAM}}
	case lt.Track.Kind() == webrtc.RTPCodecTypeVideo:
		req.Type = livekit.TrackType_VIDEO
		req.Layers = []*livekit.VideoLayer{{Quality: livekit.VideoQuality_HIGH, Width: lt.Width, Height: lt.Height}}
		req.SimulcastCodecs = []*livekit.SimulcastCodec{{Codec: "h264", Cid: cid}}
	default:
		req.AudioFeatures = []livekit.AudioTrackFeature{livekit.AudioTrackFeature_TF_NO_DTX}
	}
	ch := make(chan *livekit.TrackInfo, 1)
	s.mu.Lock()
	s.pendingAdd[cid] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pendingAdd, cid)
		s.mu.Unlock()
	}()
	if err := s.request(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{AddTrack: req}}); err != nil {
		return nil, err
	}
	select {
	case info := <-ch: // the handler recorded it in s.published
		return info, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("signaling: publishing %s: %w", lt.Source, ctx.Err())
	case <-s.done:
		return nil, fmt.Errorf("signaling: publishing %s: %w", lt.Source, s.err)
	}
}

func (s *Session) isNegotiated() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers.negotiated
}

// offerPublisher runs one publisher offer/answer exchange; the caller holds s.negotiate.
// An ICE restart is marked before the offer restarts the agent, so the resume waiting on
// it takes only a connection made after it.
func (s *Session) offerPublisher(ctx context.Context, opts *webrtc.OfferOptions) error {
	if opts != nil && opts.ICERestart {
		s.mu.Lock()
		s.peers.pubICE.restarting = true
		s.changedLocked()
		s.mu.Unlock()
	}
	offer, err := s.pub.CreateOffer(opts)
	if err != nil {
		return fmt.Errorf("signaling: publisher offer: %w", err)
	}
	if err := s.pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("signaling: publisher offer: %w", err)
	}
	wait := make(chan struct{}, 1)
	s.mu.Lock()
	s.peers.answerWait = wait
	t := s.sig.t
	s.mu.Unlock()
	req := &livekit.SignalRequest{Message: &livekit.SignalRequest_Offer{Offer: toProto(offer)}}
	if err := t.Send(ctx, req); err != nil {
		return err
	}
	select {
	case <-wait:
		s.mu.Lock()
		s.peers.negotiated = true
		s.mu.Unlock()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("signaling: waiting for publisher answer: %w", ctx.Err())
	case <-s.done:
		return fmt.Errorf("signaling: waiting for publisher answer: %w", s.err)
	}
}

// WaitMedia waits until the publisher connection has connected (media can flow), the
// session ends, or ctx ends.
func (s *Session) WaitMedia(ctx context.Context) error {
	select {
	case <-s.pubUp:
		return nil
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return fmt.Errorf("signaling: media connection not up: %w", ctx.Err())
	}
}

// ensureNegotiated negotiates the publisher connection (for its data channels) if no
// track has been published yet.
func (s *Session) ensureNegotiated(ctx context.Context) error {
	s.negotiate.Lock()
	defer s.negotiate.Unlock()
	if s.isNegotiated() {
		return nil
	}
	return s.offerPublisher(ctx, nil)
}

// SetTrackMuted tells the room a local track is muted or unmuted.
func (s *Session) SetTrackMuted(ctx context.Context, trackSID string, muted bool) error {
	return s.request(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_Mute{
		Mute: &livekit.MuteTrackRequest{Sid: trackSID, Muted: muted},
	}})
}

// UpdateVideoTrack tells the server the new size of the published simulcast track t after
// Resize (UpdateLocalVideoTrack, as livekit-client sends when its camera's resolution
// changes): the room's track info, and the subscribers' layer choices, follow.
func (s *Session) UpdateVideoTrack(ctx context.Context, t *VideoTrack) error {
	s.mu.Lock()
	info := s.published[t.ID()]
	s.mu.Unlock()
	if info == nil {
		return fmt.Errorf("signaling: video track %q is not published", t.ID())
	}
	top := t.top().Layer()
	return s.request(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_UpdateVideoTrack{
		UpdateVideoTrack: &livekit.UpdateLocalVideoTrack{TrackSid: info.GetSid(), Width: top.Width, Height: top.Height},
	}})
}

// SendData writes a data packet to the room over the reliable or lossy data channel,
// negotiating the publisher connection first if nothing was published yet.
func (s *Session) SendData(ctx context.Context, pkt *livekit.DataPacket, reliable bool) error {
	data, err := proto.Marshal(pkt)
	if err != nil {
		return fmt.Errorf("signaling: data packet: %w", err)
	}
	if len(data) > MaxDataPacketBytes {
		return fmt.Errorf("%w: %d bytes", ErrDataTooLarge, len(data))
	}
	if err := s.ensureNegotiated(ctx); err != nil {
		return err
	}
	dc := s.lossy
	if reliable {
		dc = s.reliable
	}
	if err := waitOpen(ctx, dc, s.done); err != nil {
		return err
	}
	if err := dc.Send(data); err != nil {
		return fmt.Errorf("signaling: send on %s: %w", dc.Label(), err)
	}
	return nil
}

// waitOpen waits until a data channel is open.
func waitOpen(ctx context.Context, dc *webrtc.DataChannel, done <-chan struct{}) error {
	for dc.ReadyState() != webrtc.DataChannelStateOpen {
		if dc.ReadyState() == webrtc.DataChannelStateClosed {
			return fmt.Errorf("signaling: data channel %s closed", dc.Label())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("signaling: data channel %s not open: %w", dc.Label(), ctx.Err())
		case <-done:
			return ErrClosed
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
