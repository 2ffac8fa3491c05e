package signaling

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtcp"

	"roombox/internal/backoff"
)

// TokenSource supplies access tokens to join with: the provisioned token, or a fresh one
// fetched from a token endpoint before each join.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource that always returns the same token.
type StaticToken string

// Token returns t.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// TokenFunc adapts a function to TokenSource.
type TokenFunc func(ctx context.Context) (string, error)

// Token calls f.
func (f TokenFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// ErrNotInRoom is sending data while the Room has no session.
var ErrNotInRoom = errors.New("signaling: not in the room")

// ErrTokenExpired is a token source handing out a token that has already expired.
var ErrTokenExpired = errors.New("signaling: token expired")

// RoomOptions configure a Room.
type RoomOptions struct {
	URL    string
	Tokens TokenSource
	Logger *slog.Logger
	// OnEvent receives room events, including Reconnecting/Reconnected across sessions.
	// It runs on a session goroutine and must not block.
	OnEvent func(Event)
	// OnTrack receives each subscribed remote media track.
	OnTrack func(*RemoteTrack)
	// OnData receives user data messages from the room (one at a time; must not block).
	OnData func(DataMessage)
	// RPC tunes RPC timeouts (defaults: LiveKit's 7 s ack, 15 s response).
	RPC RPCOptions
	// SubscribeAudio subscribes to every remote audio track as it is published (the box
	// plays the room); video is subscribed to explicitly.
	SubscribeAudio bool
	// OnTargetBitrateChange receives each new bandwidth estimate of the current session
	// (bits per second; each session starts again from Session.Bandwidth.Start), in order;
	// it must not block.
	OnTargetBitrateChange func(bps int)
	// Backoff is the wait before rejoin attempt n (1-based); default Backoff.
	Backoff func(n int) time.Duration
	// Session tunes each session (timeouts, test transports); its callbacks are set by
	// the Room.
	Session Options
}

// Track is a local track the Room publishes on every join; OnRTCP, if set, receives the
// RTCP the SFU sends about it (keyframe requests, receiver reports).
type Track struct {
	LocalTrack
	OnRTCP func([]rtcp.Packet)
}

// RoomState is a snapshot of the room as the client sees it.
type RoomState struct {
	Connected bool
	Room      RoomInfo
	Local     Participant
	Remote    []Participant
	Published map[Source]string // track sid by source, while connected
	Muted     map[Source]bool
	// Subscribed are the remote track sids subscribed to, while connected.
	Subscribed []string
	Attempt    int   // failed joins since the last success
	LastError  error // why the last session or join attempt ended
	Joins      int   // successful joins (1 = never rejoined)
	Resumes    int   // resumes within the current session
}

// Room keeps a participant in its room: it joins, publishes, resumes a lost signal
// connection in place, rejoins with backoff when the session cannot be resumed, and keeps
// the tracks' mute state across all of it.
type Room struct {
	opts RoomOptions
	log  *slog.Logger
	data *DataHub // one for the Room's life: RPC methods and resend state span sessions

	// muteMu orders what the server is told about mutes: every sync (syncMute) holds it
	// while it reads the latest wanted mute and sends it, so the last message sent carries
	// the latest value, never an older one that lost a race.
	muteMu sync.Mutex

	mu        sync.Mutex
	tracks    []Track
	muted     map[Source]bool // wanted, by source; holds across rejoins
	told      map[Source]bool // what the current session's server was told; absent: unknown
	sess      *Session
	published map[Source]string
	refreshed string // the newest token the server issued
	attempt   int
	lastErr   error
	joins     int
	lastStats map[string]TrackStats // by track id, for bitrates
	wantSubs  map[string]bool       // explicit subscriptions, re-applied after a rejoin
}

// NewRoom returns a Room; Run joins it.
func NewRoom(opts RoomOptions) *Room {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Backoff == nil {
		opts.Backoff = Backoff
	}
	r := &Room{opts: opts, log: opts.Logger, muted: map[Source]bool{}, told: map[Source]bool{},
		published: map[Source]string{}, wantSubs: map[string]bool{}}
	r.data = NewDataHub(roomSender{r}, DataHubOptions{Logger: opts.Logger, OnData: opts.OnData, RPC: opts.RPC})
	return r
}

// roomSender sends data through the Room's current session.
type roomSender struct{ r *Room }

func (s roomSender) SendData(ctx context.Context, pkt *livekit.DataPacket, reliable bool) error {
	sess := s.r.Session()
	if sess == nil {
		return ErrNotInRoom
	}
	return sess.SendData(ctx, pkt, reliable)
}

// PublishData sends a data message to the room, or to the identities in opts.Destinations.
func (r *Room) PublishData(ctx context.Context, payload []byte, opts DataOptions) error {
	return r.data.Publish(ctx, payload, opts)
}

// RegisterRPC makes method callable by other participants (LiveKit RPC, as the JS SDK's
// performRpc calls it).
func (r *Room) RegisterRPC(method string, h RPCHandler) error {
	return r.data.RPC().Register(method, h)
}

// PerformRPC calls method on the participant with identity destination and returns its
// answer; an *RPCError carries the remote's or LiveKit's error code.
func (r *Room) PerformRPC(ctx context.Context, destination, method, payload string, timeout time.Duration) (string, error) {
	return r.data.RPC().Perform(ctx, destination, method, payload, timeout)
}

// SetTracks sets what is published on every join (call before Run).
func (r *Room) SetTracks(tracks ...Track) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tracks = tracks
	for _, t := range tracks {
		r.muted[t.Source] = t.Muted
	}
}

// SetMuted mutes or unmutes the track of a source; the state holds across rejoins. Of
// concurrent calls, the server ends with the value of the last one to record it.
func (r *Room) SetMuted(ctx context.Context, src Source, muted bool) error {
	r.mu.Lock()
	r.muted[src] = muted
	r.mu.Unlock()
	return r.syncMute(ctx, src)
}

// syncMute tells the current session's server the latest wanted mute of src, unless it
// was told that already. A session not published yet is synced after publishing. Under
// muteMu, so a sync that read an older value has sent it before a later sync reads.
func (r *Room) syncMute(ctx context.Context, src Source) error {
	r.muteMu.Lock()
	defer r.muteMu.Unlock()
	r.mu.Lock()
	muted, sess, sid := r.muted[src], r.sess, r.published[src]
	told, known := r.told[src]
	r.mu.Unlock()
	if sess == nil || sid == "" || known && told == muted {
		return nil
	}
	err := sess.SetTrackMuted(ctx, sid, muted)
	r.mu.Lock()
	if r.sess == sess {
		if err == nil {
			r.told[src] = muted
		} else {
			delete(r.told, src) // may or may not have left: the next sync sends again
		}
	}
	r.mu.Unlock()
	return err
}

// syncMutes syncs the mute of every track (syncMute).
func (r *Room) syncMutes(ctx context.Context) {
	r.mu.Lock()
	srcs := make([]Source, len(r.tracks))
	for i, t := range r.tracks {
		srcs[i] = t.Source
	}
	r.mu.Unlock()
	for _, src := range srcs {
		if err := r.syncMute(ctx, src); err != nil {
			r.log.Warn("telling the room about mute", "source", src, "err", err)
		}
	}
}

// forgetTold marks what the server was told about the mute of the published track sid
// ("": of every track) as unknown, so the next sync sends it even if it seems unchanged.
func (r *Room) forgetTold(sid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for src, s := range r.published {
		if sid == "" || s == sid {
			delete(r.told, src)
		}
	}
}

// SetSubscribed subscribes to (or unsubscribes from) a remote track, such as a video the
// box should show; the choice is re-applied after a rejoin while the track exists.
func (r *Room) SetSubscribed(ctx context.Context, trackSID string, on bool) error {
	r.mu.Lock()
	r.wantSubs[trackSID] = on
	sess := r.sess
	r.mu.Unlock()
	if sess == nil {
		return nil
	}
	return sess.UpdateSubscription(ctx, on, trackSID)
}

// State returns a snapshot of the room.
func (r *Room) State() RoomState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := RoomState{
		Attempt: r.attempt, LastError: r.lastErr, Joins: r.joins,
		Published: map[Source]string{}, Muted: map[Source]bool{},
	}
	for k, v := range r.muted {
		st.Muted[k] = v
	}
	if r.sess != nil {
		st.Connected = true
		st.Room = r.sess.Room()
		st.Local = r.sess.Local()
		st.Remote = r.sess.Participants()
		st.Resumes = r.sess.Resumes()
		st.Subscribed = r.sess.subscriptions()
		for k, v := range r.published {
			st.Published[k] = v
		}
	}
	return st
}

// TargetBitrate is the current session's bandwidth estimate in bits per second (what the
// box may send in all), 0 between sessions.
func (r *Room) TargetBitrate() int {
	if sess := r.Session(); sess != nil {
		return sess.TargetBitrate()
	}
	return 0
}

// Session returns the current session, or nil between sessions.
func (r *Room) Session() *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sess
}

func (r *Room) emit(e Event) {
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(e)
	}
}

// Run stays in the room until ctx ends. Every failure ends in a retry after a jittered,
// capped backoff that ctx cancels at any moment.
func (r *Room) Run(ctx context.Context) error {
	defer r.data.Close()
	defer func() { r.emit(Disconnected{Reason: ctx.Err()}) }()
	for {
		token, err := r.nextToken(ctx)
		if err == nil {
			err = r.session(ctx, token)
		}
		if ctx.Err() != nil {
			return nil
		}
		var he *HTTPError
		r.mu.Lock()
		r.attempt++
		r.lastErr = err
		attempt := r.attempt
		if errors.As(err, &he) && he.Status == 401 {
			r.refreshed = "" // refused: the next join asks the token source
		}
		r.mu.Unlock()
		delay := r.opts.Backoff(attempt)
		r.log.Warn("room connection ended; rejoining", "err", err, "attempt", attempt, "in", delay.Round(time.Millisecond))
		r.emit(Reconnecting{Reason: err})
		if err := sleepCtx(ctx, delay); err != nil {
			return nil
		}
	}
}

// nextToken asks the token source for a fresh token on every join. If the source fails or
// hands out an expired token, the server's refreshed token is used while it has life
// left; a token known to have expired is never presented.
func (r *Room) nextToken(ctx context.Context) (string, error) {
	tok, err := r.opts.Tokens.Token(ctx)
	switch {
	case err != nil:
		err = fmt.Errorf("signaling: token source: %w", err)
	case !tokenExpiry(tok).IsZero() && !time.Now().Before(tokenExpiry(tok)):
		err = fmt.Errorf("%w at %s (the token source has no fresh one)", ErrTokenExpired, tokenExpiry(tok).UTC().Format(time.RFC3339))
	default:
		return tok, nil
	}
	r.mu.Lock()
	refreshed := r.refreshed
	r.mu.Unlock()
	if refreshed != "" && time.Until(tokenExpiry(refreshed)) > 30*time.Second {
		r.log.Warn("using the server's refreshed token", "because", err)
		return refreshed, nil
	}
	return "", err
}

// tokenExpiry reads a JWT's exp claim without verifying it (zero if unreadable).
func tokenExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == 0 {
		return time.Time{}
	}
	return time.Unix(claims.Exp, 0)
}

// session joins once, publishes, and returns when the session ends or ctx does.
func (r *Room) session(ctx context.Context, token string) error {
	so := r.opts.Session
	so.Logger = r.log
	so.AutoSubscribe = false
	so.OnTrack = r.opts.OnTrack
	so.OnData = r.data.Handle
	so.Data = r.data
	so.OnEvent = r.onEvent
	so.OnTargetBitrateChange = r.opts.OnTargetBitrateChange
	sess, err := Connect(ctx, r.opts.URL, token, so)
	if err != nil {
		return err
	}
	// RTCP readers end when the session closes its peer connections: wait for them after
	// Close (defers run last-in first-out).
	var wg sync.WaitGroup
	defer wg.Wait()
	defer sess.Close()

	r.mu.Lock()
	tracks := make([]Track, len(r.tracks))
	copy(tracks, r.tracks)
	local := make([]LocalTrack, len(tracks))
	for i, t := range tracks {
		local[i] = t.LocalTrack
		local[i].Muted = r.muted[t.Source]
	}
	r.mu.Unlock()
	// A join counts once media can flow: published and the publisher connection up.
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	pubs, err := sess.Publish(pctx, local...)
	if err == nil && len(pubs) > 0 {
		err = sess.WaitMedia(pctx)
	}
	cancel()
	if err != nil {
		return err
	}
	for i, p := range pubs {
		for _, read := range p.RTCPReaders(tracks[i].OnRTCP) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				read()
			}()
		}
	}
	r.mu.Lock()
	for i, p := range pubs {
		r.published[tracks[i].Source] = p.Track.SID
		r.told[tracks[i].Source] = local[i].Muted // published with it
	}
	r.sess = sess
	rejoined := r.joins > 0
	r.joins++
	r.attempt, r.lastErr = 0, nil
	r.mu.Unlock()
	// A mute that changed while publishing must reach the room too: through syncMute, in
	// order with SetMuted calls from now on.
	r.syncMutes(ctx)
	if r.opts.SubscribeAudio {
		r.subscribeAudio(ctx, sess, sess.Participants()...)
	}
	r.resubscribe(ctx, sess)
	if rejoined {
		r.emit(Reconnected{Resumed: false})
	} else {
		r.emit(Joined{Room: sess.Room()})
	}

	defer func() {
		r.mu.Lock()
		r.refreshed = sess.Token()
		r.sess = nil
		r.published = map[Source]string{}
		clear(r.told)
		r.mu.Unlock()
		// A new session is a new participant: sequences restart, calls in flight fail.
		// (The session may still be closing; Close runs in a later defer.)
		reason := ErrClosed
		select {
		case <-sess.Done():
			reason = sess.Err()
		default:
		}
		r.data.Reset(fmt.Errorf("signaling: left the room: %w", reason))
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-sess.Done():
		return sess.Err()
	}
}

// onEvent runs on the session goroutine: it follows the room's audio and passes events on.
// Until the session is published (Session() is nil) the sweep after publishing covers
// the audio of everyone present.
func (r *Room) onEvent(e Event) {
	switch ev := e.(type) {
	case LocalTrackMuted:
		// The server changed the track's mute itself (a moderator): what it was told no
		// longer says what it has. Whoever decides to obey or not syncs again.
		r.forgetTold(ev.TrackSID)
	case Reconnected:
		// A mute written as the signal connection broke may be lost, and a request made
		// while the resume flushes the queued ones may overtake them: send the latest again.
		if ev.Resumed {
			r.forgetTold("")
			r.syncMutes(context.Background())
		}
	}
	if sess := r.Session(); r.opts.SubscribeAudio && sess != nil {
		switch ev := e.(type) {
		case ParticipantJoined:
			r.subscribeAudio(context.Background(), sess, ev.Participant)
		case TrackPublished:
			r.subscribeAudio(context.Background(), sess, ev.Participant)
		}
	}
	if left, ok := e.(ParticipantLeft); ok {
		r.data.ParticipantLeft(left.Participant.Identity)
	}
	r.emit(e)
}

// subscribeAudio subscribes to the audio tracks of ps that are not subscribed yet.
func (r *Room) subscribeAudio(ctx context.Context, sess *Session, ps ...Participant) {
	var sids []string
	for _, p := range ps {
		for _, t := range p.Tracks {
			if !t.Video && !sess.isSubscribed(t.SID) {
				sids = append(sids, t.SID)
			}
		}
	}
	if len(sids) == 0 {
		return
	}
	if err := sess.UpdateSubscription(ctx, true, sids...); err != nil {
		r.log.Warn("subscribing to room audio", "err", err)
	}
}

// resubscribe re-applies explicit subscriptions to tracks still in the room.
func (r *Room) resubscribe(ctx context.Context, sess *Session) {
	present := map[string]bool{}
	for _, p := range sess.Participants() {
		for _, t := range p.Tracks {
			present[t.SID] = true
		}
	}
	r.mu.Lock()
	var on []string
	for sid, want := range r.wantSubs {
		switch {
		case !present[sid]:
			delete(r.wantSubs, sid) // gone with its publisher
		case want:
			on = append(on, sid)
		}
	}
	r.mu.Unlock()
	if len(on) > 0 {
		if err := sess.UpdateSubscription(ctx, true, on...); err != nil {
			r.log.Warn("re-subscribing after rejoin", "err", err)
		}
	}
}

// Backoff is the default wait before rejoin attempt n (1-based): exponential from 300 ms,
// capped at 10 s, with up to 50 % random jitter so a room full of boxes does not retry in
// step.
func Backoff(n int) time.Duration { return rejoinBackoff.Delay(n) }

var rejoinBackoff = backoff.Policy{Base: 300 * time.Millisecond, Max: 10 * time.Second, Jitter: true}
