package signaling

import (
	"context"
	"encoding/json"
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
	ErrPeerFailed  = errors.New("signaling: peer connection failed")
	ErrNoJoin      = errors.New("signaling: server did not answer with a join response")
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
	// Dial opens the transport; nil means the WebSocket Dial. Tests substitute fakes.
	Dial func(ctx context.Context, serverURL, token string, p DialParams) (Transport, error)
	// JoinTimeout bounds waiting for the JoinResponse (default 15 s).
	JoinTimeout time.Duration
}

// LocalTrack is a track to publish: the pion track plus what the room is told about it.
type LocalTrack struct {
	Track  webrtc.TrackLocal // its ID() is the client track id (cid) the server matches
	Type   livekit.TrackType
	Source livekit.TrackSource
	Name   string
	Width  uint32 // video only
	Height uint32
	Muted  bool // publish already muted (mute survives rejoins)
}

// Publication is a published local track.
type Publication struct {
	Info   *livekit.TrackInfo
	Sender *webrtc.RTPSender
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

// Session is one signal connection with its publisher and subscriber peer connections.
// It ends on Close, a transport or peer failure, a ping timeout or a server leave; Done
// closes then and Err says why. The device starts a new Session to rejoin.
type Session struct {
	opts Options
	log  *slog.Logger
	t    Transport
	join *livekit.JoinResponse
	pub  *webrtc.PeerConnection
	sub  *webrtc.PeerConnection

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // the pinger; run() waits for it

	errOnce sync.Once
	err     error

	negotiate sync.Mutex // one publisher offer/answer at a time

	mu           sync.Mutex
	token        string
	participants map[string]*livekit.ParticipantInfo // remote, by sid
	pendingAdd   map[string]chan *livekit.TrackInfo  // AddTrack waiting for TrackPublished, by cid
	answerWait   chan struct{}
	pubCands     []webrtc.ICECandidateInit // held until the remote description is set
	subCands     []webrtc.ICECandidateInit
	lastRecv     time.Time
	rtt          time.Duration
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
		opts:         opts,
		log:          opts.Logger,
		t:            t,
		join:         join,
		done:         make(chan struct{}),
		token:        token,
		participants: map[string]*livekit.ParticipantInfo{},
		pendingAdd:   map[string]chan *livekit.TrackInfo{},
		lastRecv:     time.Now(),
	}
	for _, p := range join.OtherParticipants {
		s.participants[p.Sid] = p
	}
	// The session outlives Connect's ctx: it runs until Close or failure.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.setupPeers(serverURL); err != nil {
		s.cancel()
		s.closePeers()
		_ = t.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.pinger()
	go s.run()
	s.log.Info("joined room", "room", join.GetRoom().GetName(), "sid", join.GetParticipant().GetSid(),
		"identity", join.GetParticipant().GetIdentity(), "server", join.GetServerInfo().GetVersion())
	return s, nil
}

func (s *Session) setupPeers(serverURL string) error {
	cfg := webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle}
	for _, is := range s.join.IceServers {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{
			URLs: is.Urls, Username: is.Username, Credential: is.Credential,
		})
	}
	if s.join.GetClientConfiguration().GetForceRelay() == livekit.ClientConfigSetting_ENABLED {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	for _, subscriber := range []bool{false, true} {
		api, err := newAPI(serverURL, subscriber)
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
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Debug("peer connection", "target", target.String(), "state", st.String())
		if st == webrtc.PeerConnectionStateFailed {
			s.fail(fmt.Errorf("%w (%s)", ErrPeerFailed, strings.ToLower(target.String())))
		}
	})
}

// send is for messages whose loss the session survives (trickle, pings): a failed write
// ends the session through the reader anyway.
func (s *Session) send(req *livekit.SignalRequest) {
	if err := s.t.Send(s.ctx, req); err != nil {
		s.log.Debug("signal send failed", "err", err)
	}
}

// fail records the first reason the session ends and starts its teardown.
func (s *Session) fail(err error) {
	s.errOnce.Do(func() { s.err = err })
	s.cancel()
}

// run owns the receive loop; on exit it stops the pinger and releases every resource.
func (s *Session) run() {
	defer close(s.done)
	for {
		msg, err := s.t.Recv(s.ctx)
		if err != nil {
			if s.ctx.Err() == nil {
				s.fail(err)
			}
			break
		}
		s.mu.Lock()
		s.lastRecv = time.Now()
		s.mu.Unlock()
		s.handle(msg)
	}
	s.fail(ErrClosed)
	s.wg.Wait()
	_ = s.t.Close()
	s.closePeers()
	s.log.Info("left room", "reason", s.err)
}

func (s *Session) closePeers() {
	for _, pc := range []*webrtc.PeerConnection{s.pub, s.sub} {
		if pc != nil {
			_ = pc.Close()
		}
	}
}

// pinger keeps the signal connection alive and detects a silent server.
func (s *Session) pinger() {
	defer s.wg.Done()
	interval := time.Duration(s.join.PingInterval) * time.Second
	timeout := time.Duration(s.join.PingTimeout) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			s.mu.Lock()
			silent := now.Sub(s.lastRecv)
			rtt := s.rtt
			s.mu.Unlock()
			if silent > timeout {
				s.fail(ErrPingTimeout)
				return
			}
			ms := now.UnixMilli()
			s.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Ping{Ping: ms}})
			s.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_PingReq{
				PingReq: &livekit.Ping{Timestamp: ms, Rtt: rtt.Milliseconds()},
			}})
		}
	}
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
		_ = s.t.Send(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_Leave{Leave: &livekit.LeaveRequest{
			Reason: livekit.DisconnectReason_CLIENT_INITIATED, Action: livekit.LeaveRequest_DISCONNECT,
		}}})
		cancel()
		s.fail(ErrClosed)
		<-s.done
	}
	return nil
}

// Join is the server's JoinResponse.
func (s *Session) Join() *livekit.JoinResponse { return s.join }

// Token is the newest access token: the server refreshes it during the session, and a
// rejoin should use it.
func (s *Session) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// RTT is the signal round-trip time measured by ping.
func (s *Session) RTT() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rtt
}

// Participants returns the remote participants currently in the room.
func (s *Session) Participants() []*livekit.ParticipantInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*livekit.ParticipantInfo, 0, len(s.participants))
	for _, p := range s.participants {
		out = append(out, p)
	}
	return out
}

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
		tr, err := s.pub.AddTransceiverFromTrack(lt.Track,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, fmt.Errorf("signaling: add %s track: %w", lt.Source, err)
		}
		pubs = append(pubs, Publication{Info: info, Sender: tr.Sender()})
	}
	if err := s.negotiatePublisher(ctx); err != nil {
		return nil, err
	}
	return pubs, nil
}

func (s *Session) addTrack(ctx context.Context, lt LocalTrack) (*livekit.TrackInfo, error) {
	cid := lt.Track.ID()
	req := &livekit.AddTrackRequest{
		Cid: cid, Name: lt.Name, Type: lt.Type, Source: lt.Source, Muted: lt.Muted,
		Width: lt.Width, Height: lt.Height,
	}
	switch lt.Type {
	case livekit.TrackType_VIDEO:
		req.Layers = []*livekit.VideoLayer{{Quality: livekit.VideoQuality_HIGH, Width: lt.Width, Height: lt.Height}}
		req.SimulcastCodecs = []*livekit.SimulcastCodec{{Codec: "h264", Cid: cid}}
	case livekit.TrackType_AUDIO:
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
	if err := s.t.Send(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{AddTrack: req}}); err != nil {
		return nil, err
	}
	select {
	case info := <-ch:
		return info, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("signaling: publishing %s: %w", lt.Source, ctx.Err())
	case <-s.done:
		return nil, fmt.Errorf("signaling: publishing %s: %w", lt.Source, s.err)
	}
}

func (s *Session) negotiatePublisher(ctx context.Context) error {
	offer, err := s.pub.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("signaling: publisher offer: %w", err)
	}
	if err := s.pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("signaling: publisher offer: %w", err)
	}
	wait := make(chan struct{}, 1)
	s.mu.Lock()
	s.answerWait = wait
	s.mu.Unlock()
	req := &livekit.SignalRequest{Message: &livekit.SignalRequest_Offer{Offer: toProto(offer)}}
	if err := s.t.Send(ctx, req); err != nil {
		return err
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("signaling: waiting for publisher answer: %w", ctx.Err())
	case <-s.done:
		return fmt.Errorf("signaling: waiting for publisher answer: %w", s.err)
	}
}

// SetTrackMuted tells the room a local track is muted or unmuted.
func (s *Session) SetTrackMuted(ctx context.Context, trackSID string, muted bool) error {
	return s.t.Send(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_Mute{
		Mute: &livekit.MuteTrackRequest{Sid: trackSID, Muted: muted},
	}})
}

// UpdateSubscription subscribes to or unsubscribes from remote tracks.
func (s *Session) UpdateSubscription(ctx context.Context, subscribe bool, trackSIDs ...string) error {
	return s.t.Send(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_Subscription{
		Subscription: &livekit.UpdateSubscription{TrackSids: trackSIDs, Subscribe: subscribe},
	}})
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

func toProto(d webrtc.SessionDescription) *livekit.SessionDescription {
	return &livekit.SessionDescription{Type: d.Type.String(), Sdp: d.SDP}
}

func fromProto(d *livekit.SessionDescription) webrtc.SessionDescription {
	return webrtc.SessionDescription{Type: webrtc.NewSDPType(d.GetType()), SDP: d.GetSdp()}
}
