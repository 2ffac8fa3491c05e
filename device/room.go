package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/media"
	"roombox/signaling"
)

// roomLink keeps the device in its room: connect, publish, wait for the session to end,
// back off, repeat — until ctx ends. Every attempt is logged and shown in Status.
type roomLink struct {
	d   *daemon
	log *slog.Logger

	wake chan struct{} // provisioning changed: drop the session / skip the backoff

	mu       sync.Mutex
	state    State
	sess     *signaling.Session
	micSID   string
	camSID   string
	token    string // newest token for the current provisioning (server refreshes it)
	attempt  int
	lastErr  error
	joinedAt time.Time
}

func newRoomLink(d *daemon, log *slog.Logger) *roomLink {
	return &roomLink{d: d, log: log, wake: make(chan struct{}, 1), state: -1}
}

// reprovisioned makes the link rejoin with the new provisioning at once.
func (r *roomLink) reprovisioned() {
	r.mu.Lock()
	r.token, r.attempt, r.lastErr = "", 0, nil
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// nextState derives the state from facts; setState logs each transition once.
func (r *roomLink) nextState(provisioned bool) State {
	switch {
	case !provisioned:
		return StateUnprovisioned
	case r.sess != nil:
		return StateInRoom
	case isRefusal(r.lastErr):
		return StateError
	case !r.joinedAt.IsZero():
		return StateReconnecting
	}
	return StateConnecting
}

func (r *roomLink) updateState() {
	cfg, _ := r.d.provisioning()
	r.mu.Lock()
	next := r.nextState(cfg.Provisioned())
	prev := r.state
	r.state = next
	attempt, lastErr := r.attempt, r.lastErr
	r.mu.Unlock()
	if next != prev {
		args := []any{"attempt", attempt}
		if lastErr != nil {
			args = append(args, "err", lastErr)
		}
		r.log.Info(fmt.Sprintf("state %s -> %s", prev, next), args...)
	}
}

// isRefusal: the server answered but refused us (bad or expired token, no permission).
// The device still retries — a fleet may fix the token — but shows an error, not "connecting".
func isRefusal(err error) bool {
	var he *signaling.HTTPError
	return errors.As(err, &he) && he.Status >= 400 && he.Status < 500
}

func (r *roomLink) run(ctx context.Context) error {
	defer r.drop()
	for {
		r.updateState()
		cfg, _ := r.d.provisioning()
		if !cfg.Provisioned() {
			select {
			case <-ctx.Done():
				return nil
			case <-r.wake:
				continue
			}
		}
		err := r.session(ctx, cfg)
		if ctx.Err() != nil {
			return nil
		}
		r.mu.Lock()
		r.attempt++
		r.lastErr = err
		attempt := r.attempt
		r.mu.Unlock()
		r.updateState()
		delay := backoff(attempt)
		r.log.Warn("room connection ended; retrying", "err", err, "attempt", attempt, "in", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// session runs one connection from dial to its end and returns why it ended.
func (r *roomLink) session(ctx context.Context, cfg Config) error {
	r.mu.Lock()
	token := r.token
	r.mu.Unlock()
	if token == "" {
		token = cfg.Token
	}
	r.log.Info("joining room", "url", cfg.URL)
	sess, err := signaling.Connect(ctx, cfg.URL, token, signaling.Options{
		AutoSubscribe: false, // the speaker path subscribes to audio (later issue)
		Logger:        r.log.With("component", "signaling"),
		OnEvent:       r.onEvent,
	})
	if err != nil {
		return err
	}
	// RTCP readers below end when the session closes its peer connections, so they are
	// waited for after Close (defers run last-in first-out).
	var wg sync.WaitGroup
	defer wg.Wait()
	defer sess.Close()
	pubCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	pubs, err := sess.Publish(pubCtx, r.d.localTracks()...)
	cancel()
	if err != nil {
		return err
	}
	// Every sender's RTCP must be read for pion's interceptors (NACK, reports) to work;
	// keyframe requests from the SFU (PLI/FIR) on the camera reach the encoder.
	rtcpCtx, stopRTCP := context.WithCancel(ctx)
	defer stopRTCP()
	r.mu.Lock()
	for _, p := range pubs {
		onKey := func() {}
		switch p.Info.GetType() {
		case livekit.TrackType_AUDIO:
			r.micSID = p.Info.GetSid()
		case livekit.TrackType_VIDEO:
			r.camSID = p.Info.GetSid()
			onKey = r.d.video.RequestKeyframe
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = media.KeyframeRequests(rtcpCtx, p.Sender, onKey)
		}()
	}
	r.sess = sess
	r.attempt, r.lastErr = 0, nil
	r.joinedAt = time.Now()
	r.mu.Unlock()
	r.d.video.RequestKeyframe()
	// The mute may have changed while publishing; the room must match the device.
	r.setMicMuted(ctx, r.d.micMuted())
	r.updateState()

	defer func() {
		r.mu.Lock()
		r.token = sess.Token()
		r.sess, r.micSID, r.camSID = nil, "", ""
		r.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-r.wake:
		return errors.New("device: provisioning changed")
	case <-sess.Done():
		return sess.Err()
	}
}

func (r *roomLink) drop() {
	r.mu.Lock()
	r.sess = nil
	r.mu.Unlock()
}

// setMicMuted tells the room about the mic mute, if the device is in it.
func (r *roomLink) setMicMuted(ctx context.Context, muted bool) {
	r.mu.Lock()
	sess, sid := r.sess, r.micSID
	r.mu.Unlock()
	if sess == nil || sid == "" {
		return // published with the current mute state at the next join
	}
	if err := sess.SetTrackMuted(ctx, sid, muted); err != nil {
		r.log.Warn("telling the room about mute", "err", err)
	}
}

// onEvent runs on the session goroutine: quick decisions only.
func (r *roomLink) onEvent(ev signaling.Event) {
	switch e := ev.(type) {
	case signaling.LocalTrackMuted:
		r.mu.Lock()
		isMic := e.TrackSID == r.micSID
		r.mu.Unlock()
		if !isMic {
			return
		}
		if e.Muted {
			// A moderator's mute is obeyed at once.
			r.log.Info("mic muted by the room")
			if err := r.d.SetMicMuted(context.Background(), true); err != nil {
				r.log.Error("moderator mute", "err", err)
			}
		} else {
			// Privacy: a remote unmute is never obeyed without a local press.
			r.log.Info("room asked to unmute the mic; ignored until someone presses mic")
		}
	case signaling.ParticipantJoined:
		r.log.Info("participant joined", "identity", e.Participant.GetIdentity())
	case signaling.ParticipantLeft:
		r.log.Info("participant left", "identity", e.Participant.GetIdentity())
	}
}

func (r *roomLink) fillStatus(st *Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st.State = r.state.String()
	st.Attempt = r.attempt
	if r.lastErr != nil {
		st.LastError = r.lastErr.Error()
	}
}

// backoff is the delay before attempt n (1-based): exponential from 300 ms, capped at
// 10 s, with up to 50 % random jitter so a room full of boxes does not retry in step.
func backoff(n int) time.Duration {
	const base, maxDelay = 300 * time.Millisecond, 10 * time.Second
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
