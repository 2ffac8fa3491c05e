package signaling

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// peerState is the negotiation and ICE state of both peer connections; guarded by
// Session.mu.
type peerState struct {
	answerWait chan struct{} // the publisher offer in flight waits for its answer here
	negotiated bool          // the publisher has had an answer
	pubCands   []webrtc.ICECandidateInit
	subCands   []webrtc.ICECandidateInit // held until the remote description is set
	pubICE     iceState
	subICE     iceState
	// subRestartDue: a resume is waiting for the server's ICE-restart offer on the
	// subscriber connection (livekit-server restarts it on every resume).
	subRestartDue bool
}

// iceState follows one peer connection's ICE connection state through restarts.
type iceState struct {
	state  webrtc.ICEConnectionState
	everUp bool // has been connected at least once
	// restarting: an ICE restart was applied and the connection it makes is not seen yet.
	restarting bool
}

// up: connected, and not by a generation of ICE that a restart has since replaced.
func (i *iceState) up() bool {
	return !i.restarting && (i.state == webrtc.ICEConnectionStateConnected || i.state == webrtc.ICEConnectionStateCompleted)
}

func (p *peerState) ice(target livekit.SignalTarget) *iceState {
	if target == livekit.SignalTarget_SUBSCRIBER {
		return &p.subICE
	}
	return &p.pubICE
}

// mediaLostError is a media connection gone quiet or failed while the signal connection
// was up; the session resumes, with an ICE restart.
type mediaLostError struct {
	target livekit.SignalTarget
	state  webrtc.ICEConnectionState
}

func (e *mediaLostError) Error() string {
	return fmt.Sprintf("signaling: %s media connection %s", strings.ToLower(e.target.String()), e.state)
}

func (e *mediaLostError) Is(target error) bool { return target == ErrPeerFailed }

func iceConfig(servers []*livekit.ICEServer, cc *livekit.ClientConfiguration) webrtc.Configuration {
	cfg := webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle}
	for _, is := range servers {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{
			URLs: is.Urls, Username: is.Username, Credential: is.Credential,
		})
	}
	if cc.GetForceRelay() == livekit.ClientConfigSetting_ENABLED {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return cfg
}

func (s *Session) setupPeers(servers []*livekit.ICEServer) error {
	cfg := iceConfig(servers, s.join.GetClientConfiguration())
	for _, subscriber := range []bool{false, true} {
		st, est := &s.pubStats, s.bwe
		if subscriber {
			st, est = &statsHolder{}, nil // receive statistics are not reported yet; nothing is sent
		}
		api, err := newAPI(s.serverURL, subscriber, st, est, s.opts.Bandwidth)
		if err != nil {
			return err
		}
		pc, err := api.NewPeerConnection(cfg)
		if err != nil {
			return fmt.Errorf("signaling: new peer connection: %w", err)
		}
		target := livekit.SignalTarget_PUBLISHER
		if subscriber {
			target = livekit.SignalTarget_SUBSCRIBER
			s.sub = pc
		} else {
			s.pub = pc
		}
		s.watchPeer(pc, target)
	}
	s.sub.OnTrack(s.onTrack)
	// The server sends room data on the data channels it opens on the subscriber
	// connection; ours on the publisher connection carry what we send.
	s.sub.OnDataChannel(func(dc *webrtc.DataChannel) { dc.OnMessage(s.onDataMessage) })
	var err error
	ordered, noRetransmits := false, uint16(0)
	if s.reliable, err = s.pub.CreateDataChannel("_reliable", nil); err != nil {
		return fmt.Errorf("signaling: reliable data channel: %w", err)
	}
	if s.lossy, err = s.pub.CreateDataChannel("_lossy", &webrtc.DataChannelInit{
		Ordered: &ordered, MaxRetransmits: &noRetransmits,
	}); err != nil {
		return fmt.Errorf("signaling: lossy data channel: %w", err)
	}
	return nil
}

func (s *Session) watchPeer(pc *webrtc.PeerConnection, target livekit.SignalTarget) {
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init, err := json.Marshal(c.ToJSON())
		if err != nil {
			return
		}
		s.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Trickle{Trickle: &livekit.TrickleRequest{
			CandidateInit: string(init), Target: target,
		}}})
	})
	pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) { s.onICEState(pc, target, st) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Debug("peer connection", "target", target.String(), "state", st.String())
		if st == webrtc.PeerConnectionStateConnected && target == livekit.SignalTarget_PUBLISHER {
			s.pubUpOnce.Do(func() { close(s.pubUp) })
		}
	})
}

// onICEState records a peer connection's ICE state. A connection that was up and goes
// disconnected or failed while the signal connection is fine starts a resume with an ICE
// restart (as the JS SDK and server-sdk-go do on a failed peer connection), not a rejoin:
// the participant, its track sids and the subscriptions stay.
func (s *Session) onICEState(pc *webrtc.PeerConnection, target livekit.SignalTarget, st webrtc.ICEConnectionState) {
	s.log.Debug("ICE", "target", target.String(), "state", st.String())
	s.mu.Lock()
	ice := s.peers.ice(target)
	ice.state = st
	if ice.restarting && (st == webrtc.ICEConnectionStateConnected || st == webrtc.ICEConnectionStateCompleted) && hasSelectedPair(pc) {
		// pion clears the selected pair when it restarts ICE, so a Connected of the old
		// generation that was still on its way when the restart began arrives without one.
		ice.restarting = false
	}
	if ice.up() {
		ice.everUp = true
	}
	lost := ice.everUp && s.sig.resume == nil &&
		(st == webrtc.ICEConnectionStateDisconnected || st == webrtc.ICEConnectionStateFailed)
	s.changedLocked()
	s.mu.Unlock()
	if lost {
		s.dropSignal(&mediaLostError{target: target, state: st})
	}
}

func hasSelectedPair(pc *webrtc.PeerConnection) bool {
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	return err == nil && pair != nil
}

func (s *Session) closePeers() {
	for _, pc := range []*webrtc.PeerConnection{s.pub, s.sub} {
		if pc != nil {
			_ = pc.Close()
		}
	}
}

func (s *Session) onDataMessage(msg webrtc.DataChannelMessage) {
	pkt := &livekit.DataPacket{}
	if err := proto.Unmarshal(msg.Data, pkt); err != nil {
		s.log.Warn("ignoring malformed data packet", "bytes", len(msg.Data), "err", err)
		return
	}
	if s.opts.OnData != nil {
		s.opts.OnData(pkt)
	}
}

func (s *Session) onTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	// The server packs the stream id as "PA_xxx|TR_xxx" (participant sid | stream).
	psid, _, _ := strings.Cut(tr.StreamID(), "|")
	rt := &RemoteTrack{Track: tr, Receiver: recv, ParticipantSID: psid, pc: s.sub}
	s.mu.Lock()
	if p := s.participants[psid]; p != nil {
		rt.Identity = p.Identity
	}
	s.mu.Unlock()
	s.log.Info("remote track", "participant", rt.Identity, "kind", tr.Kind().String(), "codec", tr.Codec().MimeType)
	if s.opts.OnTrack != nil {
		s.opts.OnTrack(rt)
	}
}
