package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
)

// Errors that end a session. Callers compare with errors.Is and decide how to recover.
var (
	ErrClosed      = errors.New("signaling: session closed")
	ErrPingTimeout = errors.New("signaling: no message from server within ping timeout")
	ErrPeerFailed  = errors.New("signaling: peer connection failed")
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
	// ResumeTimeout bounds all resume attempts after the signal connection is lost
	// (default 15 s: livekit-server keeps a participant about 20 s after its signal drops).
	ResumeTimeout time.Duration
	// ResumeBackoff is the wait before resume attempt n (0-based); default LiveKit's
	// client policy (0, 300 ms, 1.2 s, 2.7 s, 4.8 s, then 7 s).
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

// Session is one participant in a room: a signal connection with its publisher and
// subscriber peer connections. A lost signal connection is resumed in place (same
// participant, same peer connections); anything else ends the session: Done closes and
// Err says why, and the caller joins again with a new Session.
type Session struct {
	opts      Options
	log       *slog.Logger
	serverURL string
	join      *livekit.JoinResponse
	pub       *webrtc.PeerConnection
	sub       *webrtc.PeerConnection
	reliable  *webrtc.DataChannel
	lossy     *webrtc.DataChannel
	pubStats  statsHolder
	pubUp     chan struct{} // closed when the publisher connection first connects
	pubUpOnce sync.Once

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // the pinger; run() waits for it

	errOnce sync.Once
	err     error

	negotiate sync.Mutex // one publisher offer/answer at a time

	mu           sync.Mutex
	t            Transport
	lost         error // why the current transport was dropped (ping timeout, resume request)
	resuming     bool
	queued       []*livekit.SignalRequest // requests made while resuming, sent after it
	token        string
	participants map[string]*livekit.ParticipantInfo // remote, by sid
	published    map[string]*livekit.TrackInfo       // local, by cid
	ssrcs        map[string]uint32                   // local sender SSRC, by cid
	subscribed   map[string]bool                     // remote track sids we asked for
	pendingAdd   map[string]chan *livekit.TrackInfo  // AddTrack waiting for TrackPublished, by cid
	answerWait   chan struct{}
	negotiated   bool
	pubCands     []webrtc.ICECandidateInit // held until the remote description is set
	subCands     []webrtc.ICECandidateInit
	lastRecv     time.Time
	rtt          time.Duration
	resumes      int
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
		opts.ResumeBackoff = liveKitBackoff
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
		serverURL:    serverURL,
		t:            t,
		join:         join,
		done:         make(chan struct{}),
		pubUp:        make(chan struct{}),
		token:        token,
		participants: map[string]*livekit.ParticipantInfo{},
		published:    map[string]*livekit.TrackInfo{},
		ssrcs:        map[string]uint32{},
		subscribed:   map[string]bool{},
		pendingAdd:   map[string]chan *livekit.TrackInfo{},
		lastRecv:     time.Now(),
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
	go s.run()
	s.log.Info("joined room", "room", join.GetRoom().GetName(), "sid", join.GetParticipant().GetSid(),
		"identity", join.GetParticipant().GetIdentity(), "server", join.GetServerInfo().GetVersion())
	return s, nil
}

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
		st := &s.pubStats
		if subscriber {
			st = &statsHolder{} // receive statistics are not reported yet
		}
		api, err := newAPI(s.serverURL, subscriber, st)
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
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.log.Debug("peer connection", "target", target.String(), "state", st.String())
		if st == webrtc.PeerConnectionStateConnected && target == livekit.SignalTarget_PUBLISHER {
			s.pubUpOnce.Do(func() { close(s.pubUp) })
		}
		if st == webrtc.PeerConnectionStateFailed {
			s.fail(fmt.Errorf("%w (%s)", ErrPeerFailed, strings.ToLower(target.String())))
		}
	})
}

func (s *Session) transport() Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

// send is for messages whose loss the session survives (trickle, pings): a failed write
// means the signal connection is gone, which the receive loop handles.
func (s *Session) send(req *livekit.SignalRequest) {
	if err := s.transport().Send(s.ctx, req); err != nil {
		s.log.Debug("signal send failed", "err", err)
	}
}

// request sends a message the server must get: while resuming it waits in a queue that
// is flushed once the new signal connection is up.
func (s *Session) request(ctx context.Context, req *livekit.SignalRequest) error {
	s.mu.Lock()
	if s.resuming {
		s.queued = append(s.queued, req)
		s.mu.Unlock()
		return nil
	}
	t := s.t
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
	if s.lost == nil {
		s.lost = reason
	}
	t := s.t
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
			if s.lost != nil {
				err = s.lost
			}
			s.mu.Unlock()
			if rerr := s.resume(err); rerr != nil {
				s.fail(rerr)
				break
			}
			continue
		}
		s.mu.Lock()
		s.lastRecv = time.Now()
		s.mu.Unlock()
		s.handle(msg)
	}
	s.fail(ErrClosed)
	s.wg.Wait()
	_ = s.transport().Close()
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

// resume brings the session back on a new signal connection after lost: LiveKit's
// resume (reconnect=1 with our participant sid, ReconnectResponse, SyncState, and an ICE
// restart when the publisher connection is not connected). It returns an error wrapping
// lost when the server will not resume us; the caller then joins afresh.
func (s *Session) resume(lost error) error {
	if s.join.GetClientConfiguration().GetResumeConnection() == livekit.ClientConfigSetting_DISABLED {
		return fmt.Errorf("signaling: resume disabled by server after: %w", lost)
	}
	s.mu.Lock()
	s.resuming = true
	s.mu.Unlock()
	s.log.Warn("signal connection lost; resuming", "err", lost)
	if s.opts.Data != nil {
		s.opts.Data.Suspend()
	}
	s.emit(Reconnecting{Reason: lost, Resume: true})
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.ResumeTimeout)
	defer cancel()
	var err error
	var lastSeq uint32
	for n := 0; ; n++ {
		if err = sleepCtx(ctx, s.opts.ResumeBackoff(n)); err != nil {
			break
		}
		var leave *LeaveError
		if lastSeq, err = s.resumeOnce(ctx, lost); err == nil || errors.As(err, &leave) {
			break
		}
		s.log.Warn("resume attempt failed", "attempt", n+1, "err", err)
	}
	if err == nil && s.pub.ConnectionState() != webrtc.PeerConnectionStateConnected && s.isNegotiated() {
		// The media path broke too: restart ICE on the publisher (the server restarts the
		// subscriber with a new offer). The answer arrives through this receive loop, so
		// the exchange runs beside it.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.negotiate.Lock()
			defer s.negotiate.Unlock()
			if err := s.offerPublisher(s.ctx, &webrtc.OfferOptions{ICERestart: true}); err != nil && s.ctx.Err() == nil {
				s.fail(fmt.Errorf("signaling: ICE restart after resume: %w", err))
			}
		}()
	}
	s.mu.Lock()
	s.resuming = false
	queued := s.queued
	s.queued = nil
	s.lost = nil
	if err == nil {
		s.resumes++
		s.lastRecv = time.Now()
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w (signal lost: %w)", ErrNoResume, err, lost)
	}
	for _, req := range queued {
		s.send(req)
	}
	if s.opts.Data != nil {
		// Reliable data the server has not seen goes out once the data channel is back;
		// Resend waits for it (SendData), beside the receive loop that delivers the answer.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.opts.Data.Resend(s.ctx, lastSeq); err != nil && s.ctx.Err() == nil {
				s.log.Warn("resending reliable data after resume", "err", err)
			}
		}()
	}
	s.log.Info("resumed", "took", time.Since(start).Round(time.Millisecond))
	s.emit(Reconnected{Resumed: true})
	return nil
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
	old := s.t
	s.t = t
	s.mu.Unlock()
	_ = old.Close()
	return lastSeq, t.Send(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_SyncState{SyncState: s.syncState()}})
}

// syncState tells the resumed server what this client has: the subscriber offer/answer
// pair (two-PC mode), its published tracks and its data channels.
func (s *Session) syncState() *livekit.SyncState {
	st := &livekit.SyncState{
		Subscription: &livekit.UpdateSubscription{Subscribe: !s.opts.AutoSubscribe},
	}
	s.mu.Lock()
	for sid := range s.subscribed {
		st.Subscription.TrackSids = append(st.Subscription.TrackSids, sid)
	}
	s.mu.Unlock()
	if d := s.sub.LocalDescription(); d != nil {
		st.Answer = toProto(*d)
	}
	if d := s.sub.RemoteDescription(); d != nil {
		st.Offer = toProto(*d)
	}
	s.mu.Lock()
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
	switch {
	case errors.Is(lost, ErrPeerFailed):
		return livekit.ReconnectReason_RR_PUBLISHER_FAILED
	case errors.Is(lost, ErrPingTimeout):
		return livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED
	}
	var leave *LeaveError
	if errors.As(lost, &leave) {
		return livekit.ReconnectReason_RR_SWITCH_CANDIDATE
	}
	return livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED
}

// liveKitBackoff is the JS SDK's reconnect schedule.
func liveKitBackoff(n int) time.Duration {
	steps := []time.Duration{0, 300 * time.Millisecond, 1200 * time.Millisecond, 2700 * time.Millisecond, 4800 * time.Millisecond}
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
	// Check often enough that a silent server is noticed close to the timeout.
	tick := time.NewTicker(min(interval, timeout/4))
	defer tick.Stop()
	var lastPing time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			s.mu.Lock()
			silent := now.Sub(s.lastRecv)
			rtt, resuming := s.rtt, s.resuming
			s.mu.Unlock()
			if resuming {
				continue
			}
			if silent > timeout {
				s.dropSignal(ErrPingTimeout)
				continue
			}
			if now.Sub(lastPing) < interval {
				continue
			}
			lastPing = now
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
		_ = s.transport().Send(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_Leave{Leave: &livekit.LeaveRequest{
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
// resume or rejoin should use it.
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

// Resumes is how many times the signal connection was resumed.
func (s *Session) Resumes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumes
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
		if enc := tr.Sender().GetParameters().Encodings; len(enc) > 0 {
			s.mu.Lock()
			s.ssrcs[lt.Track.ID()] = uint32(enc[0].SSRC)
			s.mu.Unlock()
		}
		pubs = append(pubs, Publication{Info: info, Sender: tr.Sender()})
	}
	if err := s.offerPublisher(ctx, nil); err != nil {
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
	if err := s.request(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_AddTrack{AddTrack: req}}); err != nil {
		return nil, err
	}
	select {
	case info := <-ch:
		s.mu.Lock()
		s.published[cid] = info
		s.mu.Unlock()
		return info, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("signaling: publishing %s: %w", lt.Source, ctx.Err())
	case <-s.done:
		return nil, fmt.Errorf("signaling: publishing %s: %w", lt.Source, s.err)
	}
}

func (s *Session) subscriptions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.subscribed))
	for sid := range s.subscribed {
		out = append(out, sid)
	}
	sort.Strings(out)
	return out
}

func (s *Session) isSubscribed(trackSID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribed[trackSID]
}

func (s *Session) isNegotiated() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.negotiated
}

// offerPublisher runs one publisher offer/answer exchange; the caller holds s.negotiate.
func (s *Session) offerPublisher(ctx context.Context, opts *webrtc.OfferOptions) error {
	offer, err := s.pub.CreateOffer(opts)
	if err != nil {
		return fmt.Errorf("signaling: publisher offer: %w", err)
	}
	if err := s.pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("signaling: publisher offer: %w", err)
	}
	wait := make(chan struct{}, 1)
	s.mu.Lock()
	s.answerWait = wait
	t := s.t
	s.mu.Unlock()
	req := &livekit.SignalRequest{Message: &livekit.SignalRequest_Offer{Offer: toProto(offer)}}
	if err := t.Send(ctx, req); err != nil {
		return err
	}
	select {
	case <-wait:
		s.mu.Lock()
		s.negotiated = true
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

// UpdateSubscription subscribes to or unsubscribes from remote tracks.
func (s *Session) UpdateSubscription(ctx context.Context, subscribe bool, trackSIDs ...string) error {
	s.mu.Lock()
	for _, sid := range trackSIDs {
		if subscribe {
			s.subscribed[sid] = true
		} else {
			delete(s.subscribed, sid)
		}
	}
	s.mu.Unlock()
	return s.request(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_Subscription{
		Subscription: &livekit.UpdateSubscription{TrackSids: trackSIDs, Subscribe: subscribe},
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

func toProto(d webrtc.SessionDescription) *livekit.SessionDescription {
	return &livekit.SessionDescription{Type: d.Type.String(), Sdp: d.SDP}
}

func fromProto(d *livekit.SessionDescription) webrtc.SessionDescription {
	return webrtc.SessionDescription{Type: webrtc.NewSDPType(d.GetType()), SDP: d.GetSdp()}
}
