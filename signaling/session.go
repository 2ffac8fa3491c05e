package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Errors that end a session. Callers compare with errors.Is and decide how to recover.
var (
	ErrClosed      = errors.New("signaling: session closed")
	ErrPingTimeout = errors.New("signaling: no message from server within ping timeout")
	ErrPeerFailed  = errors.New("signaling: media connection lost")
	ErrNoJoin      = errors.New("signaling: server did not answer with a join response")
	ErrNoResume    = errors.New("signaling: server did not accept the resume")
)

// LeaveError is the server ending the session (LeaveRequest). Action tells the client
// whether to resume, reconnect fully or stay away.
type LeaveError struct {
	Reason livekit.DisconnectReason
	Action livekit.LeaveRequest_Action
}

func (e *LeaveError) Error() string {
	return fmt.Sprintf("signaling: server asked to leave (reason %s, action %s)", e.Reason, e.Action)
}

// Options configure a Session.
type Options struct {
	// AutoSubscribe makes the server send every remote track to the subscriber connection.
	AutoSubscribe bool
	Logger        *slog.Logger
	// OnEvent receives room events on the session's goroutine; it must not block.
	OnEvent func(Event)
	// OnTrack receives each remote media track; the callee owns reading it.
	OnTrack func(*RemoteTrack)
	// OnData receives every data packet from the room (user data and RPC).
	OnData func(*livekit.DataPacket)
	// Data, if set, keeps reliable data across a resume: suspended when the signal
	// connection is lost, its receive states sent in SyncState, and what the server has not
	// seen resent after the resume.
	Data DataResumer
	// Dial opens the transport; nil means the WebSocket Dial. Tests substitute fakes.
	Dial func(ctx context.Context, serverURL, token string, p DialParams) (Transport, error)
	// JoinTimeout bounds waiting for the JoinResponse (default 15 s).
	JoinTimeout time.Duration
	// ResumeTimeout bounds a resume, from the loss until the media connections are back
	// (default 15 s: livekit-server keeps a participant about 20 s after its signal drops).
	ResumeTimeout time.Duration
	// Bandwidth bounds the publisher's bandwidth estimate (bwe.go).
	Bandwidth Bandwidth
	// OnTargetBitrateChange receives each new bandwidth estimate (bits per second), in
	// order, on a session goroutine; it must not block. TargetBitrate reads it at any time.
	OnTargetBitrateChange func(bps int)
	// ResumeBackoff is the wait before resume attempt n (0-based); default LiveKit's
	// client policy but for a first wait of 200 ms (200 ms, 300 ms, 1.2 s, 2.7 s, 4.8 s,
	// then 7 s; resume.go says why).
	ResumeBackoff func(n int) time.Duration
}

// DataResumer is what a session needs of a data hub (DataHub) to resume without losing
// reliable data.
type DataResumer interface {
	Suspend()
	ReceiveStates() []*livekit.DataChannelReceiveState
	Resend(ctx context.Context, lastSeq uint32) error
}

// LocalTrack is a track to publish: the pion track plus what the room is told about it.
type LocalTrack struct {
	Track webrtc.TrackLocal // its ID() is the client track id (cid) the server matches; its Kind the type
	// Video, instead of Track, is a camera sent as simulcast layers; the track's size is its
	// largest layer's, and Width and Height are ignored.
	Video  *VideoTrack
	Source Source
	Name   string
	Width  uint32 // video only
	Height uint32
	Muted  bool // publish already muted (mute survives rejoins)
}

// id is the client track id.
func (lt LocalTrack) id() string {
	if lt.Video != nil {
		return lt.Video.ID()
	}
	return lt.Track.ID()
}

// Publication is a published local track.
type Publication struct {
	Track  TrackInfo
	Sender *webrtc.RTPSender
	Video  *VideoTrack // the simulcast track published, if it was one
}

// RemoteTrack is a remote participant's media arriving on the subscriber connection.
type RemoteTrack struct {
	Track          *webrtc.TrackRemote
	Receiver       *webrtc.RTPReceiver
	ParticipantSID string
	Identity       string
	pc             *webrtc.PeerConnection
}

// RequestKeyframe sends a PLI for a remote video track.
func (r *RemoteTrack) RequestKeyframe() error {
	return r.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(r.Track.SSRC())}})
}

// Session is one participant in a room: a signal connection with its publisher and
// subscriber peer connections. A lost signal connection, or media connections that went
// quiet, is resumed in place (same participant, same peer connections; resume.go);
// anything else ends the session: Done closes and Err says why, and the caller joins again
// with a new Session.
//
// Goroutines: run (the receive loop, which dispatches every server message in order and
// resumes) and, beside it in wg, the pinger, the bitrate notifier and each resume's
// finisher; run waits for them.
// Files by concern: session.go (connection, receive loop, requests), resume.go, pinger.go,
// peers.go (peer connections and their ICE state), publish.go, subscribe.go, handler.go
// (server messages, events).
type Session struct {
	// Set by Connect, read-only after.
	opts      Options
	log       *slog.Logger
	serverURL string
	join      *livekit.JoinResponse
	pub       *webrtc.PeerConnection
	sub       *webrtc.PeerConnection
	reliable  *webrtc.DataChannel
	lossy     *webrtc.DataChannel
	pubStats  statsHolder
	bwe       *bwe          // the publisher's bandwidth estimate
	pubUp     chan struct{} // closed when the publisher connection first connects
	pubUpOnce sync.Once

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // the pinger, resume finishers; run() waits for them

	errOnce sync.Once
	err     error

	// negotiate orders publisher offer/answer exchanges: one at a time.
	negotiate sync.Mutex
	// sendMu orders requests (request) against the flush of those queued during a resume,
	// so the server gets them in the order they were made.
	sendMu sync.Mutex

	mu    sync.Mutex
	sig   signalState // the signal connection and the resume in progress
	peers peerState   // negotiation and ICE state of both peer connections
	roomState
}

// signalState is the signal connection's state; guarded by Session.mu.
type signalState struct {
	t        Transport
	down     bool  // the transport was lost and no resume has replaced it yet
	lost     error // why the current transport was dropped (ping timeout, resume request, media)
	resume   *resume
	queued   []*livekit.SignalRequest // requests made while resuming, sent once it completes
	token    string
	lastRecv time.Time
	rtt      time.Duration
	resumes  int
	changed  chan struct{} // closed and replaced on every change a resume waits for
}

// roomState is what the session knows of the room and its own tracks; guarded by
// Session.mu.
type roomState struct {
	participants map[string]*livekit.ParticipantInfo // remote, by sid
	published    map[string]*livekit.TrackInfo       // local, by cid
	encodings    map[string][]encoding               // the local sender's encodings, by cid
	subscribed   map[string]bool                     // remote track sids we asked for
	pendingAdd   map[string]chan *livekit.TrackInfo  // AddTrack waiting for TrackPublished, by cid
}

// Connect dials the server, waits for the JoinResponse and prepares both peer connections.
func Connect(ctx context.Context, serverURL, token string, opts Options) (*Session, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dial == nil {
		opts.Dial = Dial
	}
	if opts.JoinTimeout == 0 {
		opts.JoinTimeout = 15 * time.Second
	}
	if opts.ResumeTimeout == 0 {
		opts.ResumeTimeout = 15 * time.Second
	}
	if opts.ResumeBackoff == nil {
		opts.ResumeBackoff = resumeBackoff
	}
	jctx, cancel := context.WithTimeout(ctx, opts.JoinTimeout)
	defer cancel()
	t, err := opts.Dial(jctx, serverURL, token, DialParams{AutoSubscribe: opts.AutoSubscribe})
	if err != nil {
		return nil, err
	}
	msg, err := t.Recv(jctx)
	if err != nil {
		_ = t.Close()
		return nil, fmt.Errorf("signaling: waiting for join: %w", err)
	}
	join := msg.GetJoin()
	if join == nil {
		_ = t.Close()
		if l := msg.GetLeave(); l != nil {
			return nil, &LeaveError{Reason: l.Reason, Action: l.Action}
		}
		return nil, fmt.Errorf("%w (got %T)", ErrNoJoin, msg.Message)
	}
	s := &Session{
		opts:      opts,
		log:       opts.Logger,
		serverURL: serverURL,
		join:      join,
		done:      make(chan struct{}),
		pubUp:     make(chan struct{}),
		bwe:       newBWE(),
		sig:       signalState{t: t, token: token, lastRecv: time.Now(), changed: make(chan struct{})},
		roomState: roomState{
			participants: map[string]*livekit.ParticipantInfo{},
			published:    map[string]*livekit.TrackInfo{},
			encodings:    map[string][]encoding{},
			subscribed:   map[string]bool{},
			pendingAdd:   map[string]chan *livekit.TrackInfo{},
		},
	}
	for _, p := range join.OtherParticipants {
		s.participants[p.Sid] = p
	}
	// The session outlives Connect's ctx: it runs until Close or failure.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.setupPeers(join.IceServers); err != nil {
		s.cancel()
		s.closePeers()
		_ = t.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.pinger()
	if opts.OnTargetBitrateChange != nil {
		s.wg.Add(1)
		go s.notifyBitrate()
	}
	go s.run()
	s.log.Info("joined room", "room", join.GetRoom().GetName(), "sid", join.GetParticipant().GetSid(),
		"identity", join.GetParticipant().GetIdentity(), "server", join.GetServerInfo().GetVersion())
	return s, nil
}

func (s *Session) transport() Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig.t
}

// changedLocked wakes whoever waits on a change of the session's state (a resume's
// finisher); the caller holds s.mu.
func (s *Session) changedLocked() {
	close(s.sig.changed)
	s.sig.changed = make(chan struct{})
}

// send is for messages whose loss the session survives (trickle, pings, answers): a failed
// write means the signal connection is gone, which the receive loop handles.
func (s *Session) send(req *livekit.SignalRequest) {
	if err := s.transport().Send(s.ctx, req); err != nil {
		s.log.Debug("signal send failed", "err", err)
	}
}

// request sends a message the server must get: while resuming it waits in a queue that
// is flushed once the resume has completed, as the JS SDK's SignalClient queues requests
// until it is reconnected.
func (s *Session) request(ctx context.Context, req *livekit.SignalRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if s.sig.resume != nil {
		s.sig.queued = append(s.sig.queued, req)
		s.mu.Unlock()
		return nil
	}
	t := s.sig.t
	s.mu.Unlock()
	return t.Send(ctx, req)
}

// fail records the first reason the session ends and starts its teardown.
func (s *Session) fail(err error) {
	s.errOnce.Do(func() { s.err = err })
	s.cancel()
}

// dropSignal closes the current signal connection for reason; the receive loop then
// resumes on a new one.
func (s *Session) dropSignal(reason error) {
	s.mu.Lock()
	if s.sig.lost == nil {
		s.sig.lost = reason
	}
	t := s.sig.t
	s.mu.Unlock()
	_ = t.Close()
}

// run owns the receive loop; on exit it stops the pinger and releases every resource.
func (s *Session) run() {
	defer close(s.done)
	for {
		msg, err := s.transport().Recv(s.ctx)
		if err != nil {
			if s.ctx.Err() != nil {
				break
			}
			s.mu.Lock()
			if s.sig.lost != nil {
				err = s.sig.lost
			}
			s.sig.down = true
			s.changedLocked()
			s.mu.Unlock()
			if rerr := s.resume(err); rerr != nil {
				s.fail(rerr)
				break
			}
			continue
		}
		s.mu.Lock()
		s.sig.lastRecv = time.Now()
		s.mu.Unlock()
		s.handle(msg)
	}
	s.fail(ErrClosed)
	s.wg.Wait()
	_ = s.transport().Close()
	s.closePeers()
	s.log.Info("left room", "reason", s.err)
}

// Done closes when the session has ended and released its resources.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended (valid after Done).
func (s *Session) Err() error {
	<-s.done
	return s.err
}

// Close leaves the room and waits for the session to end.
func (s *Session) Close() error {
	select {
	case <-s.done:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.transport().Send(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_Leave{Leave: &livekit.LeaveRequest{
			Reason: livekit.DisconnectReason_CLIENT_INITIATED, Action: livekit.LeaveRequest_DISCONNECT,
		}}})
		cancel()
		s.fail(ErrClosed)
		<-s.done
	}
	return nil
}

// Room is the room joined.
func (s *Session) Room() RoomInfo { return roomInfo(s.join.GetRoom()) }

// Local is this participant as the server knows it.
func (s *Session) Local() Participant { return participant(s.join.GetParticipant()) }

// Token is the newest access token: the server refreshes it during the session, and a
// resume or rejoin should use it.
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig.token
}

// RTT is the signal round-trip time measured by ping.
func (s *Session) RTT() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig.rtt
}

// Resumes is how many times the session was resumed.
func (s *Session) Resumes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig.resumes
}

// Participants returns the remote participants currently in the room.
func (s *Session) Participants() []Participant {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Participant, 0, len(s.participants))
	for _, p := range s.participants {
		out = append(out, participant(p))
	}
	return out
}

func toProto(d webrtc.SessionDescription) *livekit.SessionDescription {
	return &livekit.SessionDescription{Type: d.Type.String(), Sdp: d.SDP}
}

func fromProto(d *livekit.SessionDescription) webrtc.SessionDescription {
	return webrtc.SessionDescription{Type: webrtc.NewSDPType(d.GetType()), SDP: d.GetSdp()}
}

// iceUfrag is an SDP's first ICE username fragment ("" if none): a change of it is an ICE
// restart.
func iceUfrag(sdp string) string {
	for line := range strings.SplitSeq(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}
