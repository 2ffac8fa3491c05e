package signaling

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// fakeDataRoom is the SFU between data hubs: a packet one peer sends is encoded and
// decoded as on the wire and handed to the Handle of every other peer it is addressed to,
// with the sender's identity, sid and the channel's kind set as the server sets them.
type fakeDataRoom struct {
	mu    sync.Mutex
	peers []*fakeDataPeer
}

// fakeDataPeer is one participant: its hub, what it sent and what user data it got.
type fakeDataPeer struct {
	room     *fakeDataRoom
	identity string
	sid      string
	hub      *DataHub
	got      chan DataMessage

	mu   sync.Mutex
	sent []*livekit.DataPacket // every packet given to SendData, in order
	drop bool                  // accept packets but deliver none (a dead link)
	err  error                 // SendData fails with this
}

func (r *fakeDataRoom) join(t *testing.T, identity string, opts DataHubOptions) *fakeDataPeer {
	t.Helper()
	p := &fakeDataPeer{room: r, identity: identity, sid: "PA_" + identity, got: make(chan DataMessage, 64)}
	opts.OnData = func(m DataMessage) { p.got <- m }
	p.hub = NewDataHub(p, opts)
	t.Cleanup(p.hub.Close)
	r.mu.Lock()
	r.peers = append(r.peers, p)
	r.mu.Unlock()
	return p
}

func newDataPair(t *testing.T, opts DataHubOptions) (alice, bob *fakeDataPeer) {
	r := &fakeDataRoom{}
	return r.join(t, "alice", opts), r.join(t, "bob", opts)
}

func (p *fakeDataPeer) SendData(ctx context.Context, pkt *livekit.DataPacket, reliable bool) error {
	wire, err := proto.Marshal(pkt)
	if err != nil {
		return err
	}
	p.mu.Lock()
	fail, drop, sid := p.err, p.drop, p.sid
	if fail == nil {
		p.sent = append(p.sent, proto.Clone(pkt).(*livekit.DataPacket))
	}
	p.mu.Unlock()
	if fail != nil {
		return fail
	}
	if drop {
		return nil
	}
	p.room.mu.Lock()
	peers := slices.Clone(p.room.peers)
	p.room.mu.Unlock()
	for _, to := range peers {
		dests := pkt.GetDestinationIdentities()
		if to == p || (len(dests) > 0 && !slices.Contains(dests, to.identity)) {
			continue
		}
		in := &livekit.DataPacket{}
		if err := proto.Unmarshal(wire, in); err != nil {
			return err
		}
		in.ParticipantIdentity, in.ParticipantSid = p.identity, sid
		in.Kind = livekit.DataPacket_LOSSY
		if reliable {
			in.Kind = livekit.DataPacket_RELIABLE
		}
		to.hub.Handle(in)
	}
	return nil
}

// rejoin gives the peer a new participant sid, as a full reconnect does.
func (p *fakeDataPeer) rejoin() {
	p.mu.Lock()
	p.sid += "+"
	p.mu.Unlock()
}

func (p *fakeDataPeer) sentPackets() []*livekit.DataPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

func (p *fakeDataPeer) sequences() []uint32 {
	var out []uint32
	for _, pkt := range p.sentPackets() {
		out = append(out, pkt.GetSequence())
	}
	return out
}

func (p *fakeDataPeer) set(drop bool, err error) {
	p.mu.Lock()
	p.drop, p.err = drop, err
	p.mu.Unlock()
}

func (p *fakeDataPeer) clearSent() {
	p.mu.Lock()
	p.sent = nil
	p.mu.Unlock()
}

func (p *fakeDataPeer) next(t *testing.T) DataMessage {
	t.Helper()
	select {
	case m := <-p.got:
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("%s received no data", p.identity)
		return DataMessage{}
	}
}

func (p *fakeDataPeer) none(t *testing.T) {
	t.Helper()
	select {
	case m := <-p.got:
		t.Fatalf("%s received unexpected data %+v", p.identity, m)
	default:
	}
}

func TestDataPublishArrivesWithSender(t *testing.T) {
	r := &fakeDataRoom{}
	alice := r.join(t, "alice", DataHubOptions{})
	bob := r.join(t, "bob", DataHubOptions{})
	carol := r.join(t, "carol", DataHubOptions{})
	ctx := context.Background()

	tests := []struct {
		name string
		opts DataOptions
		to   []*fakeDataPeer
		not  []*fakeDataPeer
	}{
		{"reliable to one with topic", DataOptions{Reliable: true, Topic: "chat", Destinations: []string{"bob"}}, []*fakeDataPeer{bob}, []*fakeDataPeer{carol}},
		{"lossy to everyone", DataOptions{}, []*fakeDataPeer{bob, carol}, nil},
		{"reliable to two, no topic", DataOptions{Reliable: true, Destinations: []string{"bob", "carol"}}, []*fakeDataPeer{bob, carol}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte("hello " + tc.name)
			if err := alice.hub.Publish(ctx, payload, tc.opts); err != nil {
				t.Fatal(err)
			}
			want := DataMessage{From: "alice", Topic: tc.opts.Topic, Payload: payload, Reliable: tc.opts.Reliable}
			for _, p := range tc.to {
				got := p.next(t)
				if got.From != want.From || got.Topic != want.Topic || !bytes.Equal(got.Payload, want.Payload) || got.Reliable != want.Reliable {
					t.Errorf("%s got %+v, want %+v", p.identity, got, want)
				}
			}
			for _, p := range tc.not {
				p.none(t)
			}
			alice.none(t)
			sent := alice.sentPackets()
			last := sent[len(sent)-1]
			wantKind := livekit.DataPacket_LOSSY
			if tc.opts.Reliable {
				wantKind = livekit.DataPacket_RELIABLE
			}
			if last.GetKind() != wantKind || !slices.Equal(last.GetDestinationIdentities(), tc.opts.Destinations) {
				t.Errorf("sent kind %v destinations %v", last.GetKind(), last.GetDestinationIdentities())
			}
			if (tc.opts.Topic == "") != (last.GetUser().Topic == nil) {
				t.Errorf("topic field %v for topic %q", last.GetUser().Topic, tc.opts.Topic)
			}
		})
	}
}

func TestDataReliableSequenceIncreases(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	ctx := context.Background()
	if err := bob.hub.RPC().Register("ping", func(context.Context, RPCRequest) (string, error) { return "pong", nil }); err != nil {
		t.Fatal(err)
	}
	rel := DataOptions{Reliable: true}
	steps := []func() error{
		func() error { return alice.hub.Publish(ctx, []byte("1"), rel) },
		func() error { return alice.hub.Publish(ctx, []byte("lossy"), DataOptions{}) },
		func() error { return alice.hub.Publish(ctx, []byte("2"), rel) },
		func() error { _, err := alice.hub.RPC().Perform(ctx, "bob", "ping", "", 0); return err },
		func() error { return alice.hub.Publish(ctx, []byte("3"), rel) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	// Lossy packets carry no sequence; reliable ones (user data and the RPC request)
	// count from 1 without gaps.
	if got, want := alice.sequences(), []uint32{1, 0, 2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("sequences %v, want %v", got, want)
	}
	// bob's ack and response are his own sequence.
	if got, want := bob.sequences(), []uint32{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("bob's sequences %v, want %v", got, want)
	}
}

func TestDataTooLarge(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		size     int
		reliable bool
		err      error
	}{
		{"reliable over limit", MaxDataPacketBytes, true, ErrDataTooLarge},
		{"lossy over limit", MaxDataPacketBytes, false, ErrDataTooLarge},
		{"reliable under limit", MaxDataPacketBytes - 100, true, nil},
		{"lossy under limit", MaxDataPacketBytes - 100, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice.clearSent()
			err := alice.hub.Publish(ctx, make([]byte, tc.size), DataOptions{Reliable: tc.reliable})
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if n := len(alice.sentPackets()); (tc.err == nil) != (n == 1) {
				t.Fatalf("%d packets sent", n)
			}
			if tc.err == nil {
				bob.next(t)
			}
		})
	}
	// The refused reliable packet did not use a sequence number.
	alice.clearSent()
	if err := alice.hub.Publish(ctx, []byte("x"), DataOptions{Reliable: true}); err != nil {
		t.Fatal(err)
	}
	if got := alice.sequences(); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("sequences %v, want [2]", got)
	}
}

func TestDataResend(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		keep    int    // resend buffer size in packets
		sent    int    // reliable packets sent before the resume
		lastSeq uint32 // what the server saw
		want    []uint32
	}{
		{"server saw nothing", 64, 5, 0, []uint32{1, 2, 3, 4, 5}},
		{"server saw some", 64, 5, 3, []uint32{4, 5}},
		{"server saw all", 64, 5, 5, nil},
		{"server claims more", 64, 5, 9, nil},
		{"buffer keeps the newest", 3, 5, 0, []uint32{3, 4, 5}},
		{"buffer bound by bytes", 64, 5, 1, []uint32{4, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := DataHubOptions{ResendPackets: tc.keep}
			payload := []byte("x")
			if strings.Contains(tc.name, "bytes") {
				opts.ResendBytes = 2*MaxDataPacketBytes + 100 // room for two big packets
				payload = make([]byte, MaxDataPacketBytes-100)
			}
			alice, bob := newDataPair(t, opts)
			for range tc.sent {
				if err := alice.hub.Publish(ctx, payload, DataOptions{Reliable: true}); err != nil {
					t.Fatal(err)
				}
				bob.next(t)
			}
			alice.hub.Publish(ctx, []byte("lossy"), DataOptions{}) // never resent
			bob.next(t)
			alice.clearSent()
			if err := alice.hub.Resend(ctx, tc.lastSeq); err != nil {
				t.Fatal(err)
			}
			if got := alice.sequences(); !slices.Equal(got, tc.want) {
				t.Fatalf("resent %v, want %v", got, tc.want)
			}
			// bob has seen every sequence: resent packets are duplicates and dropped.
			bob.none(t)
			// Sending continues after the last sequence.
			alice.clearSent()
			if err := alice.hub.Publish(ctx, []byte("after"), DataOptions{Reliable: true}); err != nil {
				t.Fatal(err)
			}
			if got, want := alice.sequences(), []uint32{uint32(tc.sent) + 1}; !slices.Equal(got, want) {
				t.Fatalf("next sequence %v, want %v", got, want)
			}
			bob.next(t)
		})
	}
}

func TestDataSuspendQueuesUntilResend(t *testing.T) {
	ctx := context.Background()
	alice, bob := newDataPair(t, DataHubOptions{ResendPackets: 4})
	for range 2 {
		if err := alice.hub.Publish(ctx, []byte("before"), DataOptions{Reliable: true}); err != nil {
			t.Fatal(err)
		}
		bob.next(t)
	}
	alice.clearSent()
	alice.hub.Suspend()
	// While resuming, reliable data is queued (the call succeeds) and lossy data dropped.
	for i := range 2 {
		if err := alice.hub.Publish(ctx, []byte{byte('a' + i)}, DataOptions{Reliable: true}); err != nil {
			t.Fatal(err)
		}
		if err := alice.hub.Publish(ctx, []byte("lossy"), DataOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(alice.sentPackets()); n != 0 {
		t.Fatalf("%d packets sent while suspended", n)
	}
	// The buffer holds 4: two sent ones make room, queued ones never do.
	for range 2 {
		if err := alice.hub.Publish(ctx, []byte("c"), DataOptions{Reliable: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.hub.Publish(ctx, []byte("d"), DataOptions{Reliable: true}); !errors.Is(err, ErrResendBufferFull) {
		t.Fatalf("err %v, want ErrResendBufferFull", err)
	}
	// A resume that fails keeps everything queued.
	alice.set(false, errors.New("channel down"))
	if err := alice.hub.Resend(ctx, 2); err == nil {
		t.Fatal("Resend succeeded on a failing channel")
	}
	alice.set(false, nil)
	if err := alice.hub.Resend(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got, want := alice.sequences(), []uint32{3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("resent %v, want %v", got, want)
	}
	for _, want := range []string{"a", "b", "c", "c"} {
		if got := bob.next(t); string(got.Payload) != want {
			t.Fatalf("bob got %q, want %q", got.Payload, want)
		}
	}
	bob.none(t)
	// Not suspended any more: sends go straight out.
	alice.clearSent()
	alice.hub.Publish(ctx, []byte("lossy"), DataOptions{})
	if n := len(alice.sentPackets()); n != 1 {
		t.Fatalf("%d packets sent after the resume", n)
	}
}

func TestDataSendFailureIsNotResent(t *testing.T) {
	ctx := context.Background()
	alice, bob := newDataPair(t, DataHubOptions{})
	down := errors.New("channel closed")
	alice.set(false, down)
	if err := alice.hub.Publish(ctx, []byte("lost"), DataOptions{Reliable: true}); !errors.Is(err, down) {
		t.Fatalf("err %v, want %v", err, down)
	}
	alice.set(false, nil)
	if err := alice.hub.Publish(ctx, []byte("ok"), DataOptions{Reliable: true}); err != nil {
		t.Fatal(err)
	}
	bob.next(t)
	alice.clearSent()
	if err := alice.hub.Resend(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// The failed packet (seq 1) was reported to its caller and is not resent.
	if got := alice.sequences(); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("resent %v, want [2]", got)
	}
}

func TestDataResetStartsOver(t *testing.T) {
	ctx := context.Background()
	alice, bob := newDataPair(t, DataHubOptions{})
	for range 3 {
		alice.hub.Publish(ctx, []byte("x"), DataOptions{Reliable: true})
		bob.next(t)
	}
	alice.hub.Suspend()
	alice.hub.Reset(errors.New("full reconnect"))
	alice.clearSent()
	if err := alice.hub.Resend(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if n := len(alice.sentPackets()); n != 0 {
		t.Fatalf("resent %d packets after Reset", n)
	}
	alice.rejoin() // a new participant: bob's receive state does not apply
	if err := alice.hub.Publish(ctx, []byte("new"), DataOptions{Reliable: true}); err != nil {
		t.Fatal(err)
	}
	if got := alice.sequences(); !slices.Equal(got, []uint32{1}) {
		t.Fatalf("sequences %v after Reset, want [1]", got)
	}
	if got := bob.next(t); string(got.Payload) != "new" {
		t.Fatalf("bob got %q", got.Payload)
	}
}

func TestDataDuplicatesDropped(t *testing.T) {
	now := time.Unix(1000, 0)
	var got []string
	h := NewDataHub(nopSender{}, DataHubOptions{
		Now:    func() time.Time { return now },
		OnData: func(m DataMessage) { got = append(got, string(m.Payload)) },
	})
	defer h.Close()
	user := func(sid string, seq uint32, payload string) *livekit.DataPacket {
		return &livekit.DataPacket{
			ParticipantIdentity: "id-" + sid, ParticipantSid: sid, Sequence: seq,
			Value: &livekit.DataPacket_User{User: &livekit.UserPacket{Payload: []byte(payload)}},
		}
	}
	steps := []struct {
		pkt     *livekit.DataPacket
		advance time.Duration
	}{
		{pkt: user("PA_a", 1, "a1")},
		{pkt: user("PA_a", 2, "a2")},
		{pkt: user("PA_a", 2, "a2 again")}, // resent after a resume: dropped
		{pkt: user("PA_a", 1, "a1 again")}, // older: dropped
		{pkt: user("PA_b", 1, "b1")},       // per sender
		{pkt: user("PA_a", 0, "lossy")},    // no sequence: never dropped
		{pkt: user("PA_a", 0, "lossy")},
		{pkt: user("", 5, "server")}, // no sender sid (server API): never dropped
		{pkt: user("", 5, "server")},
		{pkt: user("PA_a", 4, "a4")},                                // gaps are fine
		{pkt: user("PA_a", 3, "a3 late"), advance: receiveStateTTL}, // state expired: accepted
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		h.Handle(s.pkt)
	}
	want := []string{"a1", "a2", "b1", "lossy", "lossy", "server", "server", "a4", "a3 late"}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	states := h.ReceiveStates()
	if len(states) != 1 || states[0].PublisherSid != "PA_a" || states[0].LastSeq != 3 {
		t.Fatalf("receive states %v, want PA_a:3 only (PA_b expired)", states)
	}
}

// nopSender accepts every packet and delivers none.
type nopSender struct{}

func (nopSender) SendData(context.Context, *livekit.DataPacket, bool) error { return nil }

// recordSender keeps what the hub sent.
type recordSender struct {
	mu   sync.Mutex
	sent []*livekit.DataPacket
}

func (s *recordSender) SendData(_ context.Context, pkt *livekit.DataPacket, _ bool) error {
	s.mu.Lock()
	s.sent = append(s.sent, proto.Clone(pkt).(*livekit.DataPacket))
	s.mu.Unlock()
	return nil
}

// waitPackets waits until n packets were sent and returns them.
func (s *recordSender) waitPackets(t *testing.T, n int) []*livekit.DataPacket {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sent := s.packets()
		if len(sent) >= n || time.Now().After(deadline) {
			return sent
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *recordSender) packets() []*livekit.DataPacket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

func TestDataMalformedIgnored(t *testing.T) {
	rec := &recordSender{}
	delivered := 0
	h := NewDataHub(rec, DataHubOptions{OnData: func(DataMessage) { delivered++ }})
	h.RPC().Register("m", func(context.Context, RPCRequest) (string, error) { return "", nil })
	from := func(pkt *livekit.DataPacket) *livekit.DataPacket {
		pkt.ParticipantIdentity, pkt.ParticipantSid = "mallory", "PA_m"
		return pkt
	}
	pkts := []*livekit.DataPacket{
		nil,
		{},
		from(&livekit.DataPacket{}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_User{}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_RpcRequest{}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_RpcAck{}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_RpcResponse{}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_RpcAck{RpcAck: &livekit.RpcAck{RequestId: "unknown"}}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_RpcResponse{RpcResponse: &livekit.RpcResponse{RequestId: "unknown"}}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_RpcResponse{RpcResponse: &livekit.RpcResponse{
			RequestId: "unknown", Value: &livekit.RpcResponse_Error{}}}}),
		// A request without an id or without a caller cannot be answered.
		from(&livekit.DataPacket{Value: &livekit.DataPacket_RpcRequest{RpcRequest: &livekit.RpcRequest{Method: "m", Version: 1}}}),
		{Value: &livekit.DataPacket_RpcRequest{RpcRequest: &livekit.RpcRequest{Id: "x", Method: "m", Version: 1}}},
		from(&livekit.DataPacket{Value: &livekit.DataPacket_Speaker{}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_Speaker{Speaker: &livekit.ActiveSpeakerUpdate{}}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_StreamHeader{StreamHeader: &livekit.DataStream_Header{}}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_EncryptedPacket{}}),
		from(&livekit.DataPacket{Value: &livekit.DataPacket_ChatMessage{ChatMessage: &livekit.ChatMessage{Message: "hi"}}}),
	}
	for _, pkt := range pkts {
		h.Handle(pkt)
	}
	// Requests are rejected before a handler goroutine starts.
	h.rpc.mu.Lock()
	running := len(h.rpc.running)
	h.rpc.mu.Unlock()
	if running != 0 {
		t.Fatalf("%d malformed requests are being served", running)
	}
	// The hub still works: a valid request is answered, and it is all that was sent.
	h.Handle(from(&livekit.DataPacket{Value: &livekit.DataPacket_RpcRequest{RpcRequest: &livekit.RpcRequest{Id: "ok", Method: "m", Version: 1}}}))
	sent := rec.waitPackets(t, 2)
	h.Close()
	if delivered != 0 {
		t.Fatalf("%d malformed packets delivered as user data", delivered)
	}
	if len(sent) != 2 || sent[0].GetRpcAck().GetRequestId() != "ok" || sent[1].GetRpcResponse().GetRequestId() != "ok" {
		t.Fatalf("sent %v, want the valid request's ack and response only", sent)
	}
}

func TestDataClosed(t *testing.T) {
	alice, _ := newDataPair(t, DataHubOptions{})
	alice.hub.Close()
	ctx := context.Background()
	if err := alice.hub.Publish(ctx, []byte("x"), DataOptions{Reliable: true}); !errors.Is(err, ErrDataClosed) {
		t.Fatalf("reliable: %v", err)
	}
	if err := alice.hub.Publish(ctx, []byte("x"), DataOptions{}); !errors.Is(err, ErrDataClosed) {
		t.Fatalf("lossy: %v", err)
	}
	if err := alice.hub.Resend(ctx, 0); !errors.Is(err, ErrDataClosed) {
		t.Fatalf("resend: %v", err)
	}
	if _, err := alice.hub.RPC().Perform(ctx, "bob", "m", "", time.Second); !errors.Is(err, ErrRPCClosed) {
		t.Fatalf("perform: %v", err)
	}
	alice.hub.Close() // idempotent
}

func FuzzDataPacketHandle(f *testing.F) {
	seeds := []*livekit.DataPacket{
		{Kind: livekit.DataPacket_RELIABLE, ParticipantIdentity: "a", ParticipantSid: "PA_a", Sequence: 3,
			DestinationIdentities: []string{"b"},
			Value:                 &livekit.DataPacket_User{User: &livekit.UserPacket{Payload: []byte("hi"), Topic: proto.String("t")}}},
		{ParticipantIdentity: "a", Value: &livekit.DataPacket_RpcRequest{RpcRequest: &livekit.RpcRequest{
			Id: "1", Method: "echo", Payload: "p", ResponseTimeoutMs: 8000, Version: 1}}},
		{ParticipantIdentity: "a", Value: &livekit.DataPacket_RpcRequest{RpcRequest: &livekit.RpcRequest{
			Id: "2", Method: "echo", Version: 7}}},
		{ParticipantIdentity: "a", Value: &livekit.DataPacket_RpcAck{RpcAck: &livekit.RpcAck{RequestId: "1"}}},
		{ParticipantIdentity: "a", Value: &livekit.DataPacket_RpcResponse{RpcResponse: &livekit.RpcResponse{
			RequestId: "1", Value: &livekit.RpcResponse_Error{Error: &livekit.RpcError{Code: 1500, Message: "m", Data: "d"}}}}},
		{ParticipantIdentity: "a", Value: &livekit.DataPacket_RpcResponse{RpcResponse: &livekit.RpcResponse{
			RequestId: "1", Value: &livekit.RpcResponse_CompressedPayload{CompressedPayload: []byte{1}}}}},
		{Value: &livekit.DataPacket_StreamChunk{StreamChunk: &livekit.DataStream_Chunk{StreamId: "s"}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		pkt := &livekit.DataPacket{}
		if err := proto.Unmarshal(data, pkt); err != nil {
			return
		}
		h := NewDataHub(&recordSender{}, DataHubOptions{OnData: func(DataMessage) {}})
		h.RPC().Register("echo", func(_ context.Context, r RPCRequest) (string, error) { return r.Payload, nil })
		h.Handle(pkt)
		h.Handle(pkt) // and again, as a resend would
		h.Close()
	})
}
