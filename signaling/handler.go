package signaling

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
)

// Event is a room event delivered to Options.OnEvent.
type Event interface{ event() }

// ParticipantJoined: a remote participant entered the room.
type ParticipantJoined struct{ Participant Participant }

// ParticipantLeft: a remote participant left the room.
type ParticipantLeft struct{ Participant Participant }

// ParticipantUpdated: a remote participant's tracks, mute state or metadata changed.
type ParticipantUpdated struct{ Participant Participant }

// TrackPublished: a remote participant published a track.
type TrackPublished struct {
	Participant Participant
	Track       TrackInfo
}

// TrackUnpublished: a remote participant stopped publishing a track.
type TrackUnpublished struct {
	Participant Participant
	Track       TrackInfo
}

// TrackMuted: a remote participant's track was muted or unmuted.
type TrackMuted struct {
	Participant Participant
	Track       TrackInfo
	Muted       bool
}

// ActiveSpeakers: who is speaking changed (deltas; a speaker who stopped has Active false).
type ActiveSpeakers struct{ Speakers []Speaker }

// ConnectionQuality: the server's view of participants' connection quality.
type ConnectionQuality struct{ Updates []Quality }

// RoomMetadata: the room's metadata changed.
type RoomMetadata struct{ Room RoomInfo }

// LocalTrackMuted: the server (a moderator) muted or asks to unmute one of our tracks.
type LocalTrackMuted struct {
	TrackSID string
	Muted    bool
}

// TokenRefreshed: the server issued a fresh access token (Session.Token has it).
type TokenRefreshed struct{}

// Reconnecting: the connection to the room was lost; Resume tells whether the same
// participant is being resumed (true) or the client will join afresh.
type Reconnecting struct {
	Reason error
	Resume bool
}

// Disconnected: the Room stopped (Run returned); Reason is why.
type Disconnected struct{ Reason error }

// Joined: the client joined the room for the first time and published its tracks.
type Joined struct{ Room RoomInfo }

// Reconnected: the client is back in the room; Resumed is false after a full rejoin.
type Reconnected struct{ Resumed bool }

// RequestFailed: the server refused a request (RequestResponse with an error).
type RequestFailed struct {
	RequestID uint32
	Reason    livekit.RequestResponse_Reason
	Message   string
}

func (TrackPublished) event()     {}
func (TrackUnpublished) event()   {}
func (TrackMuted) event()         {}
func (ActiveSpeakers) event()     {}
func (ConnectionQuality) event()  {}
func (RoomMetadata) event()       {}
func (ParticipantJoined) event()  {}
func (ParticipantLeft) event()    {}
func (ParticipantUpdated) event() {}
func (LocalTrackMuted) event()    {}
func (TokenRefreshed) event()     {}
func (RequestFailed) event()      {}
func (Reconnecting) event()       {}
func (Joined) event()             {}
func (Disconnected) event()       {}
func (Reconnected) event()        {}

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
		// Recorded here, in order with the messages after it (a SubscribedQualityUpdate
		// for the track can follow at once).
		s.mu.Lock()
		ch := s.pendingAdd[m.TrackPublished.GetCid()]
		if ch != nil {
			s.published[m.TrackPublished.GetCid()] = m.TrackPublished.GetTrack()
		}
		s.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m.TrackPublished.GetTrack():
			default:
			}
		}
	case *livekit.SignalResponse_Leave:
		leave := &LeaveError{Reason: m.Leave.GetReason(), Action: m.Leave.GetAction()}
		if leave.Action == livekit.LeaveRequest_RESUME {
			s.dropSignal(leave) // the server wants the same participant back on a new connection
			return
		}
		s.fail(leave)
	case *livekit.SignalResponse_Mute:
		s.emit(LocalTrackMuted{TrackSID: m.Mute.GetSid(), Muted: m.Mute.GetMuted()})
	case *livekit.SignalResponse_RefreshToken:
		s.mu.Lock()
		s.sig.token = m.RefreshToken
		s.mu.Unlock()
		s.emit(TokenRefreshed{})
	case *livekit.SignalResponse_PongResp:
		rtt := time.Since(time.UnixMilli(m.PongResp.GetLastPingTimestamp()))
		if rtt >= 0 {
			s.mu.Lock()
			s.sig.rtt = rtt
			s.mu.Unlock()
		}
	case *livekit.SignalResponse_SpeakersChanged:
		var sp []Speaker
		for _, v := range m.SpeakersChanged.GetSpeakers() {
			sp = append(sp, Speaker{SID: v.GetSid(), Level: v.GetLevel(), Active: v.GetActive()})
		}
		s.emit(ActiveSpeakers{Speakers: sp})
	case *livekit.SignalResponse_ConnectionQuality:
		var q []Quality
		for _, v := range m.ConnectionQuality.GetUpdates() {
			q = append(q, Quality{SID: v.GetParticipantSid(), Quality: strings.ToLower(v.GetQuality().String()), Score: v.GetScore()})
		}
		s.emit(ConnectionQuality{Updates: q})
	case *livekit.SignalResponse_SubscribedQualityUpdate:
		s.onSubscribedQuality(m.SubscribedQualityUpdate)
	case *livekit.SignalResponse_RoomUpdate:
		s.emit(RoomMetadata{Room: roomInfo(m.RoomUpdate.GetRoom())})
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
	cands := s.peers.pubCands
	s.peers.pubCands = nil
	wait := s.peers.answerWait
	s.peers.answerWait = nil
	s.mu.Unlock()
	s.addCandidates(s.pub, cands)
	if wait != nil {
		wait <- struct{}{}
	}
}

func (s *Session) onSubscriberOffer(d *livekit.SessionDescription) {
	// An offer with new ICE credentials restarts ICE (the server's restart on a resume):
	// marked before pion restarts the agent, so only a connection made after it counts.
	if prev := s.sub.RemoteDescription(); prev != nil && iceUfrag(prev.SDP) != iceUfrag(d.GetSdp()) {
		s.mu.Lock()
		s.peers.subICE.restarting = true
		s.peers.subRestartDue = false
		s.changedLocked()
		s.mu.Unlock()
	}
	if err := s.sub.SetRemoteDescription(fromProto(d)); err != nil {
		s.fail(fmt.Errorf("signaling: subscriber offer: %w", err))
		return
	}
	s.mu.Lock()
	cands := s.peers.subCands
	s.peers.subCands = nil
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
			s.peers.pubCands = append(s.peers.pubCands, c)
		} else {
			s.peers.subCands = append(s.peers.subCands, c)
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
		var evs []Event
		switch {
		case p.State == livekit.ParticipantInfo_DISCONNECTED:
			delete(s.participants, p.Sid)
			if known {
				evs = append(evs, ParticipantLeft{Participant: participant(p)})
			}
		case !known:
			s.participants[p.Sid] = p
			evs = append(evs, ParticipantJoined{Participant: participant(p)})
		default:
			s.participants[p.Sid] = p
			evs = append(trackEvents(old, p), ParticipantUpdated{Participant: participant(p)})
		}
		s.mu.Unlock()
		for _, ev := range evs {
			s.emit(ev)
		}
	}
}

// trackEvents compares a participant's tracks before and after an update.
func trackEvents(old, cur *livekit.ParticipantInfo) []Event {
	before := make(map[string]*livekit.TrackInfo, len(old.GetTracks()))
	for _, t := range old.GetTracks() {
		before[t.GetSid()] = t
	}
	var evs []Event
	p := participant(cur)
	for _, t := range cur.GetTracks() {
		prev, ok := before[t.GetSid()]
		delete(before, t.GetSid())
		switch {
		case !ok:
			evs = append(evs, TrackPublished{Participant: p, Track: trackInfo(t)})
		case prev.GetMuted() != t.GetMuted():
			evs = append(evs, TrackMuted{Participant: p, Track: trackInfo(t), Muted: t.GetMuted()})
		}
	}
	for _, t := range before {
		evs = append(evs, TrackUnpublished{Participant: p, Track: trackInfo(t)})
	}
	return evs
}
