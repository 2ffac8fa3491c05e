package signaling

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
)

// errResumeWindow is a resume that ran out of its time (Options.ResumeTimeout).
var errResumeWindow = errors.New("signaling: resume window ran out")

// resumeMediaWait is how long one resume attempt waits for the media connections once its
// signal connection is back.
const resumeMediaWait = 3 * time.Second

// resume is one resume in progress, from the loss of the signal connection (or of a media
// connection) until the media connections are back. Its fields are guarded by Session.mu,
// but attempts, which only the receive loop touches.
//
// It follows livekit-client's RTCEngine.resumeConnection: reconnect the signal with our
// participant sid, send SyncState, restart ICE, and count the resume done only once the
// peer connections are connected again (waitForPCReconnected); until then requests are
// queued. A signal connection lost during a resume makes that attempt fail and the next
// one follow the same backoff schedule (the attempt count is kept, as the JS SDK keeps
// reconnectAttempts until a resume succeeds): so a flapping link spaces its attempts out
// instead of hammering the server. Only the server refusing (a Leave) or the resume window
// running out ends the session, and the Room joins afresh.
//
// Why the resume waits for the media: livekit-server restarts ICE on the subscriber
// connection on every resume and waits for our answer. An answer still in flight when the
// signal is cut again can reach the server after it has already sent its next offer, and it
// then fails the negotiation and forces a full reconnect ("stable->SetRemote(answer)" in its
// log). The subscriber connecting again after the restart proves the server has applied our
// answer, so nothing of ours is in flight once Reconnected is emitted.
type resume struct {
	start    time.Time
	reason   error
	media    bool // a media connection was lost: the publisher restarts ICE too
	attempts int
	gen      int                // counts losses during the resume: a finisher of an older one stops
	stop     context.CancelFunc // ends the current attempt's finisher
}

// resume brings the session back after lost: LiveKit's resume (reconnect=1 with our
// participant sid, ReconnectResponse, SyncState), then a finisher beside the receive loop
// restarts ICE where needed and completes the resume once the media connections are back.
// It returns an error wrapping lost when the server will not resume us; the caller then
// ends the session and the Room joins afresh.
func (s *Session) resume(lost error) error {
	if s.join.GetClientConfiguration().GetResumeConnection() == livekit.ClientConfigSetting_DISABLED {
		return fmt.Errorf("signaling: resume disabled by server after: %w", lost)
	}
	s.mu.Lock()
	r := s.sig.resume
	first := r == nil
	if first {
		r = &resume{start: time.Now(), reason: lost, media: errors.Is(lost, ErrPeerFailed)}
		s.sig.resume = r
		s.changedLocked()
	} else if r.stop != nil {
		r.gen++ // that attempt's finisher waits on a connection that is gone
		r.stop()
	}
	s.mu.Unlock()
	if first {
		s.log.Warn("connection lost; resuming", "err", lost)
		if s.opts.Data != nil {
			s.opts.Data.Suspend()
		}
		s.emit(Reconnecting{Reason: lost, Resume: true})
	} else {
		s.log.Warn("signal connection lost during the resume; resuming again", "err", lost, "attempt", r.attempts+1)
	}
	deadline := r.start.Add(s.opts.ResumeTimeout)
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel()
	for {
		n := r.attempts
		r.attempts++
		err := sleepCtx(ctx, s.opts.ResumeBackoff(n))
		var lastSeq uint32
		if err == nil {
			lastSeq, err = s.resumeOnce(ctx, lost)
		}
		var leave *LeaveError
		switch {
		case err == nil:
			s.startFinisher(r, deadline, lastSeq)
			return nil
		case errors.As(err, &leave):
			return fmt.Errorf("%w: %w (lost: %w)", ErrNoResume, err, lost)
		case ctx.Err() != nil:
			return fmt.Errorf("%w: %w after %d attempts: %w (lost: %w)", ErrNoResume, errResumeWindow, n+1, err, lost)
		}
		s.log.Warn("resume attempt failed", "attempt", n+1, "err", err)
	}
}

// resumeOnce makes one resume attempt; it returns the last reliable data sequence the
// server saw from us.
func (s *Session) resumeOnce(ctx context.Context, lost error) (uint32, error) {
	t, err := s.opts.Dial(ctx, s.serverURL, s.Token(), DialParams{
		AutoSubscribe: s.opts.AutoSubscribe, Reconnect: true,
		ParticipantSID: s.join.GetParticipant().GetSid(), ReconnectReason: reconnectReason(lost),
	})
	if err != nil {
		return 0, err
	}
	msg, err := t.Recv(ctx)
	if err != nil {
		_ = t.Close()
		return 0, err
	}
	var lastSeq uint32
	switch m := msg.Message.(type) {
	case *livekit.SignalResponse_Reconnect:
		lastSeq = m.Reconnect.GetLastMessageSeq()
		if len(m.Reconnect.IceServers) > 0 {
			cfg := iceConfig(m.Reconnect.IceServers, m.Reconnect.GetClientConfiguration())
			for _, pc := range []*webrtc.PeerConnection{s.pub, s.sub} {
				if err := pc.SetConfiguration(cfg); err != nil {
					s.log.Debug("updating ICE servers", "err", err)
				}
			}
		}
	case *livekit.SignalResponse_Leave:
		_ = t.Close()
		return 0, &LeaveError{Reason: m.Leave.GetReason(), Action: m.Leave.GetAction()}
	default:
		_ = t.Close()
		return 0, fmt.Errorf("signaling: resume answered with %T", msg.Message)
	}
	s.mu.Lock()
	old := s.sig.t
	s.sig.t = t
	s.sig.down, s.sig.lost = false, nil
	s.sig.lastRecv = time.Now()
	// The server restarts ICE on the subscriber with a new offer; the resume waits for it.
	s.peers.subRestartDue = s.sub.RemoteDescription() != nil
	s.changedLocked()
	s.mu.Unlock()
	_ = old.Close()
	return lastSeq, t.Send(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_SyncState{SyncState: s.syncState()}})
}

// startFinisher starts the goroutine that completes the resume r now that its signal
// connection is back.
func (s *Session) startFinisher(r *resume, deadline time.Time, lastSeq uint32) {
	ctx, stop := context.WithDeadline(s.ctx, deadline)
	s.mu.Lock()
	r.stop = stop
	gen := r.gen
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		s.finishResume(ctx, r, gen, lastSeq)
	}()
}

// finishResume restarts the publisher's ICE if it needs it, waits for the media
// connections, then ends the resume: queued requests go out in order, Reconnected is
// emitted, and reliable data the server has not seen is resent. A newer attempt (the
// signal was lost again) or the session ending stops it quietly; the resume window
// running out ends the session.
func (s *Session) finishResume(ctx context.Context, r *resume, gen int, lastSeq uint32) {
	current := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.sig.resume == r && r.gen == gen
	}
	giveUp := func(err error) {
		if current() && s.ctx.Err() == nil {
			s.fail(fmt.Errorf("%w: %w (lost: %w)", ErrNoResume, err, r.reason))
		}
	}
	s.mu.Lock()
	// The JS SDK restarts the publisher's ICE on every resume; after a signal-only loss the
	// server kept our publisher transport, and restarting it would only interrupt the media.
	restartPub := s.peers.negotiated && (r.media || !s.peers.pubICE.up())
	s.mu.Unlock()
	if restartPub {
		s.negotiate.Lock()
		err := s.offerPublisher(ctx, &webrtc.OfferOptions{ICERestart: true})
		s.negotiate.Unlock()
		if err != nil {
			giveUp(fmt.Errorf("signaling: ICE restart: %w", err))
			return
		}
	}
	// ICE gives up on a candidate pair after a few unanswered checks (pion: 7, 200 ms
	// apart), so a restart made while the path was still dead never connects: after
	// resumeMediaWait this attempt is taken as failed and the next one restarts ICE afresh,
	// as the JS SDK retries when waitForPCReconnected times out.
	attempt := time.NewTimer(resumeMediaWait)
	defer attempt.Stop()
	for {
		s.sendMu.Lock() // before s.mu, as request takes them: the flush keeps requests in order
		s.mu.Lock()
		if s.sig.resume != r || r.gen != gen {
			s.mu.Unlock()
			s.sendMu.Unlock()
			return
		}
		if s.mediaNotBackLocked() == nil {
			s.sig.resume = nil
			s.sig.resumes++
			queued := s.sig.queued
			s.sig.queued = nil
			t := s.sig.t
			s.changedLocked()
			s.mu.Unlock()
			for _, req := range queued {
				if err := t.Send(s.ctx, req); err != nil {
					s.log.Debug("sending a queued request", "err", err)
				}
			}
			s.sendMu.Unlock()
			break
		}
		changed := s.sig.changed
		s.mu.Unlock()
		s.sendMu.Unlock()
		select {
		case <-changed:
		case <-attempt.C:
			if lost := s.mediaNotBack(); lost != nil && current() {
				s.dropSignal(lost)
			}
		case <-ctx.Done():
			giveUp(fmt.Errorf("signaling: media connections not back: %w", errResumeWindow))
			return
		}
	}
	s.log.Info("resumed", "took", time.Since(r.start).Round(time.Millisecond), "attempts", r.attempts)
	s.emit(Reconnected{Resumed: true})
	if s.opts.Data != nil {
		// Reliable data the server has not seen goes out once the data channel is back;
		// Resend waits for it (SendData).
		if err := s.opts.Data.Resend(s.ctx, lastSeq); err != nil && s.ctx.Err() == nil {
			s.log.Warn("resending reliable data after resume", "err", err)
		}
	}
}

// mediaNotBack says which media connection a resume still waits for, nil if none.
func (s *Session) mediaNotBack() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mediaNotBackLocked()
}

// mediaNotBackLocked is mediaNotBack for a caller holding s.mu: every media connection that
// was up must be up again, the subscriber after the ICE restart the server starts on every
// resume, the publisher after ours (if it needed one).
func (s *Session) mediaNotBackLocked() error {
	p := &s.peers
	switch {
	case p.subRestartDue || p.subICE.everUp && !p.subICE.up():
		return &mediaLostError{target: livekit.SignalTarget_SUBSCRIBER, state: p.subICE.state}
	case p.negotiated && p.pubICE.everUp && !p.pubICE.up():
		return &mediaLostError{target: livekit.SignalTarget_PUBLISHER, state: p.pubICE.state}
	}
	return nil
}

// syncState tells the resumed server what this client has: the subscriber offer/answer
// pair (two-PC mode), its published tracks and its data channels.
func (s *Session) syncState() *livekit.SyncState {
	st := &livekit.SyncState{
		Subscription: &livekit.UpdateSubscription{Subscribe: !s.opts.AutoSubscribe},
	}
	if d := s.sub.LocalDescription(); d != nil {
		st.Answer = toProto(*d)
	}
	if d := s.sub.RemoteDescription(); d != nil {
		st.Offer = toProto(*d)
	}
	s.mu.Lock()
	for sid := range s.subscribed {
		st.Subscription.TrackSids = append(st.Subscription.TrackSids, sid)
	}
	for cid, info := range s.published {
		st.PublishTracks = append(st.PublishTracks, &livekit.TrackPublishedResponse{Cid: cid, Track: info})
	}
	s.mu.Unlock()
	if s.opts.Data != nil {
		st.DatachannelReceiveStates = s.opts.Data.ReceiveStates()
	}
	for _, dc := range []*webrtc.DataChannel{s.reliable, s.lossy} {
		if id := dc.ID(); id != nil {
			st.DataChannels = append(st.DataChannels, &livekit.DataChannelInfo{
				Label: dc.Label(), Id: uint32(*id), Target: livekit.SignalTarget_PUBLISHER,
			})
		}
	}
	return st
}

func reconnectReason(lost error) livekit.ReconnectReason {
	var media *mediaLostError
	var leave *LeaveError
	switch {
	case errors.As(lost, &media) && media.target == livekit.SignalTarget_SUBSCRIBER:
		return livekit.ReconnectReason_RR_SUBSCRIBER_FAILED
	case errors.Is(lost, ErrPeerFailed):
		return livekit.ReconnectReason_RR_PUBLISHER_FAILED
	case errors.Is(lost, ErrPingTimeout):
		return livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED
	case errors.As(lost, &leave):
		return livekit.ReconnectReason_RR_SWITCH_CANDIDATE
	}
	return livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED
}

// resumeBackoff is the JS SDK's reconnect schedule, but for its first step: the JS SDK
// resumes at once, we wait 200 ms. livekit-server gives a participant up (NEGOTIATE_FAILED,
// then a full reconnect) when the connection of its resume drops while the server is still
// answering it: the ICE-restart offer cannot be written. A link that has just dropped is the
// one likely to drop again within moments (a flapping link); 200 ms lets it settle, and is
// nothing next to a rejoin.
func resumeBackoff(n int) time.Duration {
	steps := []time.Duration{200 * time.Millisecond, 300 * time.Millisecond, 1200 * time.Millisecond, 2700 * time.Millisecond, 4800 * time.Millisecond}
	if n < len(steps) {
		return steps[n]
	}
	return 7 * time.Second
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
