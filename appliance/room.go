package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"roombox/appliance/provision"
	"roombox/appliance/store"
	"roombox/control"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"roombox/signaling"
)

// roomLink keeps the device in the room it is provisioned for: it runs a signaling.Room
// (join, resume, rejoin with backoff) and starts a new one when provisioning changes.
// Every attempt is logged and shown in control.Status.
type roomLink struct {
	d   *daemon
	log *slog.Logger

	wake    chan struct{} // provisioning changed
	resized chan struct{} // the camera's capture changed: the room is told by run

	// tellMu orders what the room hears about mutes: syncMutes holds it while it reads the
	// latest state and hands it to the room, run while it installs a new room with the
	// state current then; so every room ends with the last change recorded.
	tellMu sync.Mutex

	mu       sync.Mutex
	room     *signaling.Room
	state    control.State
	resuming bool
}

func newRoomLink(d *daemon, log *slog.Logger) *roomLink {
	return &roomLink{d: d, log: log, wake: make(chan struct{}, 1), resized: make(chan struct{}, 1), state: -1}
}

// videoResized makes the link tell the room the camera's new size. A session joining later
// announces the size its track has then.
func (r *roomLink) videoResized() {
	select {
	case r.resized <- struct{}{}:
	default:
	}
}

// tellResized tells the current session, if it has the camera published, the track's size.
func (r *roomLink) tellResized(ctx context.Context) {
	room := r.current()
	if room == nil {
		return
	}
	if sess := room.Session(); sess != nil {
		if err := sess.UpdateVideoTrack(ctx, r.d.videoTrack); err != nil {
			r.log.Info("telling the room the camera's size", "err", err)
		}
	}
}

// joined starts a new session's camera afresh: every layer wanted until its server says
// otherwise (it speaks only of changes), and its size told again, in case the capture
// changed while the track was being published with the old one.
func (r *roomLink) joined() {
	if r.d.layers != nil {
		r.d.layers.ResetWanted()
		r.videoResized()
	}
}

// reprovisioned makes the link rejoin with the new provisioning at once.
func (r *roomLink) reprovisioned() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *roomLink) current() *signaling.Room {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.room
}

// nextState derives the state from facts; updateState logs each transition once.
func nextState(provisioned, resuming bool, rs signaling.RoomState) control.State {
	switch {
	case !provisioned:
		return control.StateUnprovisioned
	case rs.Connected && !resuming:
		return control.StateInRoom
	case isRefusal(rs.LastError):
		return control.StateError
	case rs.Joins > 0:
		return control.StateReconnecting
	}
	return control.StateConnecting
}

func (r *roomLink) updateState() {
	cfg, info := r.d.provisioning()
	var rs signaling.RoomState
	room := r.current()
	if room != nil {
		rs = room.State()
	}
	r.mu.Lock()
	next := nextState(cfg.Provisioned(), r.resuming, rs)
	prev := r.state
	r.state = next
	r.mu.Unlock()
	if next != prev {
		args := []any{"attempt", rs.Attempt}
		if rs.LastError != nil {
			args = append(args, "err", rs.LastError)
		}
		r.log.Info(fmt.Sprintf("state %s -> %s", prev, next), args...)
		r.d.metrics.StateChanged()
		r.d.notifyState(next, info.Room)
	}
}

// isRefusal: the server answered but refused us (bad or expired token, no permission).
// The device still retries — a fleet may fix the token — but shows an error, not
// "connecting".
func isRefusal(err error) bool {
	var he *signaling.HTTPError
	return errors.Is(err, signaling.ErrTokenExpired) ||
		errors.As(err, &he) && he.Status >= 400 && he.Status < 500
}

func (r *roomLink) run(ctx context.Context) error {
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
		room := signaling.NewRoom(signaling.RoomOptions{
			URL:            cfg.URL,
			Tokens:         r.tokens(cfg),
			Logger:         r.log.With("component", "signaling"),
			OnEvent:        r.onEvent,
			OnTrack:        r.onTrack,
			SubscribeAudio: true,
			// The camera's layers share the estimate; it starts where they all fit.
			OnTargetBitrateChange: r.d.setTargetBitrate,
			Session:               signaling.Options{Bandwidth: r.d.bandwidth()},
		})
		// A change recorded before this is in the tracks; one recorded after syncs to this
		// room, as its syncMutes waits for tellMu.
		r.tellMu.Lock()
		room.SetTracks(r.d.localTracks()...)
		r.mu.Lock()
		r.room, r.resuming = room, false
		r.mu.Unlock()
		r.tellMu.Unlock()
		r.log.Info("joining room", "url", cfg.URL)

		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = room.Run(rctx)
		}()
		r.stay(ctx, rctx)
		cancel()
		<-done
		if ctx.Err() != nil {
			return nil
		}
	}
}

// stay keeps the room until ctx ends or provisioning changes, telling it (in rctx, the
// room's) when the camera's size changes.
func (r *roomLink) stay(ctx, rctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			r.log.Info("provisioning changed; rejoining")
			return
		case <-r.resized:
			r.tellResized(rctx)
		}
	}
}

// tokens is where the room client gets access tokens: the provisioned one, or fresh ones
// from the fleet's token endpoint.
func (r *roomLink) tokens(cfg store.Config) signaling.TokenSource {
	if cfg.TokenEndpoint == "" {
		return signaling.StaticToken(cfg.Token)
	}
	return &provision.EndpointTokens{URL: cfg.TokenEndpoint, Credential: cfg.Credential, HTTP: http.DefaultClient,
		Now: time.Now, OnToken: r.d.setTokenInfo}
}

// syncMutes tells the room the latest mic and camera mutes (a room not joined yet
// publishes its tracks with them). Under tellMu, a call that read an older state has
// handed it over before a later call reads, so the room ends with the latest.
func (r *roomLink) syncMutes(ctx context.Context) {
	r.tellMu.Lock()
	defer r.tellMu.Unlock()
	room := r.current()
	if room == nil {
		return
	}
	st := r.d.savedState()
	for _, m := range []struct {
		src   signaling.Source
		muted bool
	}{{signaling.SourceMicrophone, st.MicMuted}, {signaling.SourceCamera, st.CameraOff}} {
		if err := room.SetMuted(ctx, m.src, m.muted); err != nil {
			r.log.Warn("telling the room about mute", "source", m.src, "err", err)
		}
	}
}

// onEvent runs on a session goroutine: quick decisions only.
func (r *roomLink) onEvent(ev signaling.Event) {
	switch e := ev.(type) {
	case signaling.LocalTrackMuted:
		room := r.current()
		if room == nil {
			return
		}
		var t control.Target
		switch e.TrackSID {
		case room.State().Published[signaling.SourceMicrophone]:
			t = control.TargetMic
		case room.State().Published[signaling.SourceCamera]:
			t = control.TargetCamera
		default:
			return
		}
		if e.Muted {
			// A moderator's mute is obeyed at once.
			r.log.Info("muted by the room", "target", t)
			if err := r.d.SetMuted(context.Background(), t, true); err != nil {
				r.log.Error("moderator mute", "target", t, "err", err)
			}
		} else if cfg, _ := r.d.provisioning(); cfg.Media.AllowRemoteUnmute {
			r.log.Info("unmuted by the room (allowed by provisioning)", "target", t)
			if err := r.d.SetMuted(context.Background(), t, false); err != nil {
				r.log.Error("remote unmute", "target", t, "err", err)
			}
		} else {
			// Privacy: a remote unmute is never obeyed without a local press. The server
			// has unmuted the track itself: tell it again that it is muted.
			r.log.Info("room asked to unmute; ignored until a local press", "target", t)
			r.syncMutes(context.Background())
		}
	case signaling.Reconnecting:
		r.mu.Lock()
		r.resuming = e.Resume
		r.mu.Unlock()
	case signaling.Joined:
		r.d.metrics.Joined()
		r.joined()
	case signaling.Reconnected:
		if e.Resumed {
			r.d.metrics.Resumed()
		} else {
			r.joined()
		}
	case signaling.LayersWanted:
		if r.d.layers != nil && e.TrackID == r.d.videoTrack.ID() {
			r.d.layers.SetWanted(e.Wanted)
		}
		r.mu.Lock()
		r.resuming = false
		r.mu.Unlock()
	case signaling.ParticipantJoined:
		r.log.Info("participant joined", "identity", e.Participant.Identity)
	case signaling.ParticipantLeft:
		r.log.Info("participant left", "identity", e.Participant.Identity)
	}
	r.updateState()
}

// onTrack plays the room's audio through the speaker; the playback reads the track until
// it ends with its session.
func (r *roomLink) onTrack(rt *signaling.RemoteTrack) {
	if rt.Track.Kind() != webrtc.RTPCodecTypeAudio || r.d.playback == nil {
		return
	}
	if err := r.d.playback.AddTrack(rt.Track); err != nil {
		r.log.Error("playing remote audio", "identity", rt.Identity, "err", err)
	}
}

func (r *roomLink) fillStatus(st *control.Status) {
	var rs signaling.RoomState
	if room := r.current(); room != nil {
		rs = room.State()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st.State = r.state.String()
	st.Attempt = rs.Attempt
	if rs.LastError != nil {
		st.LastError = rs.LastError.Error()
	}
	for _, p := range rs.Remote {
		st.Participants = append(st.Participants, p.Identity)
	}
	st.Joins, st.Resumes = rs.Joins, rs.Resumes
}
