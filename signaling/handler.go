package signaling

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
)

// Event is a room event delivered to Options.OnEvent.
type Event interface{ event() }

// ParticipantJoined: a remote participant entered the room.
type ParticipantJoined struct{ Participant *livekit.ParticipantInfo }

// ParticipantLeft: a remote participant left the room.
type ParticipantLeft struct{ Participant *livekit.ParticipantInfo }

// ParticipantUpdated: a remote participant's tracks, mute state or metadata changed.
type ParticipantUpdated struct{ Participant *livekit.ParticipantInfo }

// LocalTrackMuted: the server (a moderator) muted or asks to unmute one of our tracks.
type LocalTrackMuted struct {
	TrackSID string
	Muted    bool
}

// TokenRefreshed: the server issued a fresh access token (Session.Token has it).
type TokenRefreshed struct{}

// RequestFailed: the server refused a request (RequestResponse with an error).
type RequestFailed struct {
	RequestID uint32
	Reason    livekit.RequestResponse_Reason
	Message   string
}

func (ParticipantJoined) event()  {}
func (ParticipantLeft) event()    {}
func (ParticipantUpdated) event() {}
func (LocalTrackMuted) event()    {}
func (TokenRefreshed) event()     {}
func (RequestFailed) event()      {}

func (s *Session) emit(e Event) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(e)
	}
}

// handle applies one server message. It runs on the session goroutine only.
func (s *Session) handle(msg *livekit.SignalResponse) {
	switch m := msg.Message.(type) {
	case *livekit.SignalResponse_Answer:
		s.onPublisherAnswer(m.Answer)
	case *livekit.SignalResponse_Offer:
		s.onSubscriberOffer(m.Offer)
	case *livekit.SignalResponse_Trickle:
		s.onTrickle(m.Trickle)
	case *livekit.SignalResponse_Update:
		s.onParticipants(m.Update.GetParticipants())
	case *livekit.SignalResponse_TrackPublished:
		s.mu.Lock()
		ch := s.pendingAdd[m.TrackPublished.GetCid()]
		s.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m.TrackPublished.GetTrack():
			default:
			}
		}
	case *livekit.SignalResponse_Leave:
		s.fail(&LeaveError{Reason: m.Leave.GetReason(), Action: m.Leave.GetAction()})
	case *livekit.SignalResponse_Mute:
		s.emit(LocalTrackMuted{TrackSID: m.Mute.GetSid(), Muted: m.Mute.GetMuted()})
	case *livekit.SignalResponse_RefreshToken:
		s.mu.Lock()
		s.token = m.RefreshToken
		s.mu.Unlock()
		s.emit(TokenRefreshed{})
	case *livekit.SignalResponse_PongResp:
		rtt := time.Since(time.UnixMilli(m.PongResp.GetLastPingTimestamp()))
		if rtt >= 0 {
			s.mu.Lock()
			s.rtt = rtt
			s.mu.Unlock()
		}
	case *livekit.SignalResponse_RequestResponse:
		if r := m.RequestResponse; r.GetReason() != livekit.RequestResponse_OK {
			s.log.Warn("server refused request", "request", r.GetRequestId(), "reason", r.GetReason().String(), "message", r.GetMessage())
			s.emit(RequestFailed{RequestID: r.GetRequestId(), Reason: r.GetReason(), Message: r.GetMessage()})
		}
	default:
		// Messages this client does not act on (speakers, quality, stream state, ...) are
		// valid protocol; ignoring them is correct.
	}
}

func (s *Session) onPublisherAnswer(d *livekit.SessionDescription) {
	if err := s.pub.SetRemoteDescription(fromProto(d)); err != nil {
		s.fail(fmt.Errorf("signaling: publisher answer: %w", err))
		return
	}
	s.mu.Lock()
	cands := s.pubCands
	s.pubCands = nil
	wait := s.answerWait
	s.answerWait = nil
	s.mu.Unlock()
	s.addCandidates(s.pub, cands)
	if wait != nil {
		wait <- struct{}{}
	}
}

func (s *Session) onSubscriberOffer(d *livekit.SessionDescription) {
	if err := s.sub.SetRemoteDescription(fromProto(d)); err != nil {
		s.fail(fmt.Errorf("signaling: subscriber offer: %w", err))
		return
	}
	s.mu.Lock()
	cands := s.subCands
	s.subCands = nil
	s.mu.Unlock()
	s.addCandidates(s.sub, cands)
	answer, err := s.sub.CreateAnswer(nil)
	if err == nil {
		err = s.sub.SetLocalDescription(answer)
	}
	if err != nil {
		s.fail(fmt.Errorf("signaling: subscriber answer: %w", err))
		return
	}
	s.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Answer{Answer: toProto(answer)}})
}

func (s *Session) onTrickle(t *livekit.TrickleRequest) {
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(t.GetCandidateInit()), &c); err != nil {
		s.log.Warn("ignoring malformed ICE candidate from server", "err", err)
		return
	}
	pc := s.pub
	if t.GetTarget() == livekit.SignalTarget_SUBSCRIBER {
		pc = s.sub
	}
	// A candidate can arrive before the description it belongs to; hold it until then.
	s.mu.Lock()
	if pc.RemoteDescription() == nil {
		if pc == s.pub {
			s.pubCands = append(s.pubCands, c)
		} else {
			s.subCands = append(s.subCands, c)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.addCandidates(pc, []webrtc.ICECandidateInit{c})
}

func (s *Session) addCandidates(pc *webrtc.PeerConnection, cands []webrtc.ICECandidateInit) {
	for _, c := range cands {
		if err := pc.AddICECandidate(c); err != nil {
			s.log.Warn("ignoring ICE candidate", "err", err)
		}
	}
}

// onParticipants applies a versioned participant update: older versions are dropped,
// DISCONNECTED means the participant left.
func (s *Session) onParticipants(ps []*livekit.ParticipantInfo) {
	local := s.join.GetParticipant().GetSid()
	for _, p := range ps {
		if p.GetSid() == local {
			continue
		}
		s.mu.Lock()
		old, known := s.participants[p.Sid]
		if known && p.Version != 0 && p.Version < old.Version {
			s.mu.Unlock()
			continue
		}
		var ev Event
		switch {
		case p.State == livekit.ParticipantInfo_DISCONNECTED:
			delete(s.participants, p.Sid)
			if known {
				ev = ParticipantLeft{Participant: p}
			}
		case !known:
			s.participants[p.Sid] = p
			ev = ParticipantJoined{Participant: p}
		default:
			s.participants[p.Sid] = p
			ev = ParticipantUpdated{Participant: p}
		}
		s.mu.Unlock()
		if ev != nil {
			s.emit(ev)
		}
	}
}
