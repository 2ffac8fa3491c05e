package signaling

import (
	"context"
	"errors"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
)

// fakeTransport is the server side of a session in memory.
type fakeTransport struct {
	in     chan *livekit.SignalResponse
	out    chan *livekit.SignalRequest
	fail   chan error
	closed chan struct{}
	once   sync.Once
}

func newFakeTransport() *fakeTransport {
	return &fakeTransport{
		in:     make(chan *livekit.SignalResponse, 16),
		out:    make(chan *livekit.SignalRequest, 256),
		fail:   make(chan error, 1),
		closed: make(chan struct{}),
	}
}

func (f *fakeTransport) Send(ctx context.Context, req *livekit.SignalRequest) error {
	select {
	case <-f.closed:
		return ErrTransportClosed
	default:
	}
	select {
	case f.out <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeTransport) Recv(ctx context.Context) (*livekit.SignalResponse, error) {
	select {
	case m := <-f.in:
		return m, nil
	case err := <-f.fail:
		return nil, err
	case <-f.closed:
		return nil, ErrTransportClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fakeTransport) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// next returns the next request of type T the client sent, skipping others (pings, trickle).
func next[T any](t *testing.T, f *fakeTransport) T {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case req := <-f.out:
			if m, ok := req.Message.(T); ok {
				return m
			}
		case <-deadline:
			var zero T
			t.Fatalf("client sent no %T", zero)
			return zero
		}
	}
}

func joinResponse() *livekit.SignalResponse {
	return &livekit.SignalResponse{Message: &livekit.SignalResponse_Join{Join: &livekit.JoinResponse{
		Room:              &livekit.Room{Name: "demo", Sid: "RM_1"},
		Participant:       &livekit.ParticipantInfo{Sid: "PA_me", Identity: "box"},
		OtherParticipants: []*livekit.ParticipantInfo{{Sid: "PA_a", Identity: "alice", Version: 3}},
		PingInterval:      1,
		PingTimeout:       2,
	}}}
}

type eventLog struct {
	mu sync.Mutex
	ev []Event
	ch chan Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
	select {
	case l.ch <- e:
	default:
	}
}

// fakeServer scripts the transports a session gets: the first dial gets first; each later
// dial (a resume) takes the next from redials, or is refused when none is queued.
type fakeServer struct {
	first   *fakeTransport
	redials chan *fakeTransport
	mu      sync.Mutex
	params  []DialParams
}

func (f *fakeServer) dial(ctx context.Context, u, tok string, p DialParams) (Transport, error) {
	f.mu.Lock()
	f.params = append(f.params, p)
	n := len(f.params)
	f.mu.Unlock()
	if n == 1 {
		return f.first, nil
	}
	select {
	case t := <-f.redials:
		return t, nil
	default:
		return nil, errors.New("fake: connection refused")
	}
}

func (f *fakeServer) dials() []DialParams {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]DialParams(nil), f.params...)
}

func connectFake(t *testing.T, first ...*livekit.SignalResponse) (*Session, *fakeTransport, *eventLog, error) {
	t.Helper()
	s, srv, events, err := connectFakeServer(t, first...)
	return s, srv.first, events, err
}

func connectFakeServer(t testing.TB, first ...*livekit.SignalResponse) (*Session, *fakeServer, *eventLog, error) {
	t.Helper()
	srv := &fakeServer{first: newFakeTransport(), redials: make(chan *fakeTransport, 4)}
	for _, m := range first {
		srv.first.in <- m
	}
	events := &eventLog{ch: make(chan Event, 64)}
	s, err := Connect(context.Background(), "ws://127.0.0.1:1", "tok0", Options{
		OnEvent:       events.add,
		JoinTimeout:   2 * time.Second,
		ResumeTimeout: 500 * time.Millisecond,
		ResumeBackoff: func(n int) time.Duration { return 20 * time.Millisecond },
		Dial:          srv.dial,
	})
	if s != nil {
		t.Cleanup(func() { _ = s.Close() })
	}
	return s, srv, events, err
}

func TestConnectFirstMessage(t *testing.T) {
	tests := []struct {
		name  string
		first *livekit.SignalResponse
		check func(t *testing.T, err error)
	}{
		{"join", joinResponse(), func(t *testing.T, err error) {
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
		}},
		{"leave before join", &livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
			Reason: livekit.DisconnectReason_DUPLICATE_IDENTITY, Action: livekit.LeaveRequest_DISCONNECT,
		}}}, func(t *testing.T, err error) {
			var le *LeaveError
			if !errors.As(err, &le) || le.Reason != livekit.DisconnectReason_DUPLICATE_IDENTITY {
				t.Fatalf("err = %v, want LeaveError DUPLICATE_IDENTITY", err)
			}
		}},
		{"something else first", &livekit.SignalResponse{Message: &livekit.SignalResponse_Pong{Pong: 1}},
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrNoJoin) {
					t.Fatalf("err = %v, want ErrNoJoin", err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := connectFake(t, tc.first)
			tc.check(t, err)
		})
	}
}

func TestConnectNoAnswer(t *testing.T) {
	_, _, _, err := connectFake(t) // the server never speaks
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestHandleMessages(t *testing.T) {
	tests := []struct {
		name  string
		msg   *livekit.SignalResponse
		check func(t *testing.T, s *Session, ev Event)
	}{
		{"refresh token", &livekit.SignalResponse{Message: &livekit.SignalResponse_RefreshToken{RefreshToken: "tok1"}},
			func(t *testing.T, s *Session, ev Event) {
				if _, ok := ev.(TokenRefreshed); !ok || s.Token() != "tok1" {
					t.Fatalf("event %T, token %q; want TokenRefreshed, tok1", ev, s.Token())
				}
			}},
		{"moderator mute", &livekit.SignalResponse{Message: &livekit.SignalResponse_Mute{Mute: &livekit.MuteTrackRequest{Sid: "TR_mic", Muted: true}}},
			func(t *testing.T, s *Session, ev Event) {
				if m, ok := ev.(LocalTrackMuted); !ok || m.TrackSID != "TR_mic" || !m.Muted {
					t.Fatalf("event %#v, want LocalTrackMuted TR_mic muted", ev)
				}
			}},
		{"participant joins", &livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{
			Participants: []*livekit.ParticipantInfo{{Sid: "PA_b", Identity: "bob", State: livekit.ParticipantInfo_ACTIVE}},
		}}}, func(t *testing.T, s *Session, ev Event) {
			if j, ok := ev.(ParticipantJoined); !ok || j.Participant.Identity != "bob" || len(s.Participants()) != 2 {
				t.Fatalf("event %#v with %d participants, want bob joined and 2", ev, len(s.Participants()))
			}
		}},
		{"participant leaves", &livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{
			Participants: []*livekit.ParticipantInfo{{Sid: "PA_a", Identity: "alice", Version: 4, State: livekit.ParticipantInfo_DISCONNECTED}},
		}}}, func(t *testing.T, s *Session, ev Event) {
			if l, ok := ev.(ParticipantLeft); !ok || l.Participant.Identity != "alice" || len(s.Participants()) != 0 {
				t.Fatalf("event %#v with %d participants, want alice left and 0", ev, len(s.Participants()))
			}
		}},
		{"server refuses a request", &livekit.SignalResponse{Message: &livekit.SignalResponse_RequestResponse{RequestResponse: &livekit.RequestResponse{
			RequestId: 7, Reason: livekit.RequestResponse_NOT_ALLOWED, Message: "no",
		}}}, func(t *testing.T, s *Session, ev Event) {
			if f, ok := ev.(RequestFailed); !ok || f.RequestID != 7 || f.Reason != livekit.RequestResponse_NOT_ALLOWED {
				t.Fatalf("event %#v, want RequestFailed 7 NOT_ALLOWED", ev)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ft, events, err := connectFake(t, joinResponse())
			if err != nil {
				t.Fatal(err)
			}
			ft.in <- tc.msg
			select {
			case ev := <-events.ch:
				tc.check(t, s, ev)
			case <-time.After(5 * time.Second):
				t.Fatal("no event")
			}
		})
	}
}

func TestStaleParticipantUpdateDropped(t *testing.T) {
	s, ft, events, err := connectFake(t, joinResponse())
	if err != nil {
		t.Fatal(err)
	}
	// Version 2 is older than the join's version 3: it must not mark alice as gone.
	ft.in <- &livekit.SignalResponse{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{
		Participants: []*livekit.ParticipantInfo{{Sid: "PA_a", Identity: "alice", Version: 2, State: livekit.ParticipantInfo_DISCONNECTED}},
	}}}
	// A later message proves the stale one was processed first.
	ft.in <- &livekit.SignalResponse{Message: &livekit.SignalResponse_RefreshToken{RefreshToken: "t"}}
	if ev := <-events.ch; ev != (TokenRefreshed{}) {
		t.Fatalf("first event %#v, want only TokenRefreshed", ev)
	}
	if n := len(s.Participants()); n != 1 {
		t.Fatalf("%d participants, want alice still present", n)
	}
}

func TestSessionEnds(t *testing.T) {
	tests := []struct {
		name    string
		trigger func(ft *fakeTransport)
		want    func(error) bool
	}{
		{"server leave with reconnect", func(ft *fakeTransport) {
			ft.in <- &livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
				Reason: livekit.DisconnectReason_SERVER_SHUTDOWN, Action: livekit.LeaveRequest_RECONNECT,
			}}}
		}, func(err error) bool {
			var le *LeaveError
			return errors.As(err, &le) && le.Action == livekit.LeaveRequest_RECONNECT
		}},
		{"transport fails and the server refuses to resume", func(ft *fakeTransport) { ft.fail <- ErrTransportClosed },
			func(err error) bool { return errors.Is(err, ErrNoResume) && errors.Is(err, ErrTransportClosed) }},
		{"server goes silent and cannot be resumed", func(ft *fakeTransport) {}, // ping timeout 2 s in joinResponse
			func(err error) bool { return errors.Is(err, ErrNoResume) && errors.Is(err, ErrPingTimeout) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ft, _, err := connectFake(t, joinResponse())
			if err != nil {
				t.Fatal(err)
			}
			tc.trigger(ft)
			select {
			case <-s.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("session did not end")
			}
			if err := s.Err(); !tc.want(err) {
				t.Fatalf("Err() = %v", err)
			}
			select {
			case <-ft.closed:
			default:
				t.Fatal("transport not closed after the session ended")
			}
		})
	}
}

func TestPingsAndClose(t *testing.T) {
	s, ft, _, err := connectFake(t, joinResponse())
	if err != nil {
		t.Fatal(err)
	}
	ping := next[*livekit.SignalRequest_PingReq](t, ft)
	if ping.PingReq.Timestamp == 0 {
		t.Fatal("ping without timestamp")
	}
	ft.in <- &livekit.SignalResponse{Message: &livekit.SignalResponse_PongResp{PongResp: &livekit.Pong{
		LastPingTimestamp: time.Now().Add(-30 * time.Millisecond).UnixMilli(),
	}}}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	leave := next[*livekit.SignalRequest_Leave](t, ft)
	if leave.Leave.Reason != livekit.DisconnectReason_CLIENT_INITIATED {
		t.Fatalf("leave reason %v", leave.Leave.Reason)
	}
	if !errors.Is(s.Err(), ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", s.Err())
	}
	if rtt := s.RTT(); rtt < 30*time.Millisecond {
		t.Fatalf("RTT %v, want >= 30ms from the pong", rtt)
	}
}

func TestMalformedTrickleKeepsSession(t *testing.T) {
	s, ft, events, err := connectFake(t, joinResponse())
	if err != nil {
		t.Fatal(err)
	}
	ft.in <- &livekit.SignalResponse{Message: &livekit.SignalResponse_Trickle{Trickle: &livekit.TrickleRequest{CandidateInit: "{not json"}}}
	ft.in <- &livekit.SignalResponse{Message: &livekit.SignalResponse_RefreshToken{RefreshToken: "t2"}}
	<-events.ch
	select {
	case <-s.Done():
		t.Fatalf("session ended on a malformed candidate: %v", s.Err())
	default:
	}
}

func TestSignalURL(t *testing.T) {
	tests := []struct {
		in, wantPrefix string
		wantErr        bool
	}{
		{"ws://127.0.0.1:7880", "ws://127.0.0.1:7880/rtc?", false},
		{"wss://lk.example/base/", "wss://lk.example/base/rtc?", false},
		{"https://lk.example", "wss://lk.example/rtc?", false},
		{"ftp://lk.example", "", true},
	}
	for _, tc := range tests {
		got, err := signalURL(tc.in, "T", DialParams{AutoSubscribe: true})
		if (err != nil) != tc.wantErr {
			t.Fatalf("%s: err %v", tc.in, err)
		}
		if err == nil && (len(got) < len(tc.wantPrefix) || got[:len(tc.wantPrefix)] != tc.wantPrefix) {
			t.Fatalf("%s: got %s, want prefix %s", tc.in, got, tc.wantPrefix)
		}
	}
}

func reconnectResponse() *livekit.SignalResponse {
	return &livekit.SignalResponse{Message: &livekit.SignalResponse_Reconnect{Reconnect: &livekit.ReconnectResponse{}}}
}

// A lost signal connection is resumed in place: a new transport dialed with reconnect=1
// and our participant sid, SyncState sent, requests made meanwhile delivered, the session
// still alive with the same participant.
func TestResumeAfterSignalLoss(t *testing.T) {
	tests := []struct {
		name   string
		lose   func(ft *fakeTransport)
		reason livekit.ReconnectReason
	}{
		{"transport error", func(ft *fakeTransport) { ft.fail <- ErrTransportClosed }, livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED},
		{"server leave with resume action", func(ft *fakeTransport) {
			ft.in <- &livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
				Action: livekit.LeaveRequest_RESUME,
			}}}
		}, livekit.ReconnectReason_RR_SWITCH_CANDIDATE},
		{"ping timeout", func(ft *fakeTransport) {}, livekit.ReconnectReason_RR_SIGNAL_DISCONNECTED},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, srv, events, err := connectFakeServer(t, joinResponse())
			if err != nil {
				t.Fatal(err)
			}
			second := newFakeTransport()
			second.in <- reconnectResponse()
			srv.redials <- second
			tc.lose(srv.first)
			waitEvent[Reconnected](t, events)
			sync := next[*livekit.SignalRequest_SyncState](t, second)
			if sync.SyncState.Subscription == nil {
				t.Fatal("SyncState without subscription state")
			}
			d := srv.dials()
			if len(d) != 2 || !d[1].Reconnect || d[1].ParticipantSID != "PA_me" || d[1].ReconnectReason != tc.reason {
				t.Fatalf("dials %+v, want a second with reconnect, sid PA_me, reason %v", d, tc.reason)
			}
			if err := s.SetTrackMuted(context.Background(), "TR_mic", true); err != nil {
				t.Fatal(err)
			}
			if m := next[*livekit.SignalRequest_Mute](t, second); m.Mute.Sid != "TR_mic" {
				t.Fatalf("mute for %q on the resumed connection", m.Mute.Sid)
			}
			select {
			case <-s.Done():
				t.Fatalf("session ended: %v", s.Err())
			default:
			}
			if s.Resumes() != 1 {
				t.Fatalf("Resumes() = %d, want 1", s.Resumes())
			}
		})
	}
}

// A signal connection lost during the resume restarts the resume: the next attempt follows
// the backoff schedule from where it was (attempt 1, not 0 again), the room sees one
// Reconnecting and one Reconnected, and a request made meanwhile reaches the connection that
// completed the resume.
func TestCutDuringResumeRestartsIt(t *testing.T) {
	srv := &fakeServer{first: newFakeTransport(), redials: make(chan *fakeTransport, 4)}
	srv.first.in <- joinResponse()
	var mu sync.Mutex
	var waits []int
	events := &eventLog{ch: make(chan Event, 64)}
	s, err := Connect(context.Background(), "ws://127.0.0.1:1", "tok0", Options{
		OnEvent: events.add, ResumeTimeout: 5 * time.Second, Dial: srv.dial,
		ResumeBackoff: func(n int) time.Duration {
			mu.Lock()
			waits = append(waits, n)
			mu.Unlock()
			return 10 * time.Millisecond
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	cut := newFakeTransport() // lost before it answers the resume
	cut.fail <- ErrTransportClosed
	third := newFakeTransport()
	third.in <- reconnectResponse()
	srv.redials <- cut
	srv.redials <- third
	srv.first.fail <- ErrTransportClosed
	waitEvent[Reconnecting](t, events)
	if err := s.SetTrackMuted(context.Background(), "TR_mic", true); err != nil {
		t.Fatal(err)
	}
	waitEvent[Reconnected](t, events)
	next[*livekit.SignalRequest_SyncState](t, third)
	if m := next[*livekit.SignalRequest_Mute](t, third); m.Mute.Sid != "TR_mic" {
		t.Fatalf("mute for %q", m.Mute.Sid)
	}
	events.mu.Lock()
	var reconnecting, reconnected int
	for _, e := range events.ev {
		switch e.(type) {
		case Reconnecting:
			reconnecting++
		case Reconnected:
			reconnected++
		}
	}
	events.mu.Unlock()
	if reconnecting != 1 || reconnected != 1 {
		t.Fatalf("%d Reconnecting, %d Reconnected events; want 1 and 1", reconnecting, reconnected)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 2 || waits[0] != 0 || waits[1] != 1 {
		t.Fatalf("backoff asked for attempts %v, want [0 1] (the count kept across the cut)", waits)
	}
	if d := srv.dials(); len(d) != 3 || !d[2].Reconnect {
		t.Fatalf("dials %+v, want the join and two resumes", d)
	}
	if s.Resumes() != 1 {
		t.Fatalf("Resumes() = %d, want 1", s.Resumes())
	}
}

// A server that no longer knows the participant answers the resume with a leave asking
// for a full reconnect: the session ends with that leave, without further attempts.
func TestResumeRefusedWithReconnect(t *testing.T) {
	s, srv, _, err := connectFakeServer(t, joinResponse())
	if err != nil {
		t.Fatal(err)
	}
	second := newFakeTransport()
	second.in <- &livekit.SignalResponse{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{
		Reason: livekit.DisconnectReason_STATE_MISMATCH, Action: livekit.LeaveRequest_RECONNECT,
	}}}
	srv.redials <- second
	srv.first.fail <- ErrTransportClosed
	<-s.Done()
	var leave *LeaveError
	if !errors.As(s.Err(), &leave) || leave.Action != livekit.LeaveRequest_RECONNECT {
		t.Fatalf("Err() = %v, want the RECONNECT leave", s.Err())
	}
	if n := len(srv.dials()); n != 2 {
		t.Fatalf("%d dials, want 2 (no retry after the server said reconnect)", n)
	}
}

func waitEvent[T Event](t *testing.T, l *eventLog) T {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-l.ch:
			if v, ok := e.(T); ok {
				return v
			}
		case <-deadline:
			var zero T
			t.Fatalf("no %T event", zero)
			return zero
		}
	}
}

// Data channel messages are decoded by the session: malformed ones are dropped, valid ones
// reach OnData.
func TestSessionDecodesDataMessages(t *testing.T) {
	var got []*livekit.DataPacket
	s := &Session{log: slog.New(slog.DiscardHandler), opts: Options{OnData: func(p *livekit.DataPacket) { got = append(got, p) }}}
	for _, b := range [][]byte{{0xff}, {0x12, 0x05, 0x01}, []byte("not a protobuf at all")} {
		s.onDataMessage(webrtc.DataChannelMessage{Data: b})
	}
	if len(got) != 0 {
		t.Fatalf("%d malformed messages reached OnData", len(got))
	}
	valid, err := proto.Marshal(&livekit.DataPacket{Value: &livekit.DataPacket_User{User: &livekit.UserPacket{Payload: []byte("x"), Topic: proto.String("t")}}})
	if err != nil {
		t.Fatal(err)
	}
	s.onDataMessage(webrtc.DataChannelMessage{Data: valid})
	if len(got) != 1 || got[0].GetUser().GetTopic() != "t" {
		t.Fatalf("valid message: got %v", got)
	}
}
