package signaling

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
)

func mustRegister(t *testing.T, p *fakeDataPeer, method string, h RPCHandler) {
	t.Helper()
	if err := p.hub.RPC().Register(method, h); err != nil {
		t.Fatal(err)
	}
}

// rpcCode is the code of an *RPCError, or 0.
func rpcCode(err error) uint32 {
	var re *RPCError
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

// blockUntilDone is a handler that reports its start and then waits for its ctx. Reports
// nobody waits for are dropped, so a test can leave handlers to the engine's Close.
func blockUntilDone(started chan<- struct{}, ended chan<- error) RPCHandler {
	return func(ctx context.Context, _ RPCRequest) (string, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		select {
		case ended <- ctx.Err():
		default:
		}
		return "", ctx.Err()
	}
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func TestRPCRoundTrip(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	reqs := make(chan RPCRequest, 1)
	mustRegister(t, bob, "greet", func(_ context.Context, req RPCRequest) (string, error) {
		reqs <- req
		return "hello " + req.Payload, nil
	})
	got, err := alice.hub.RPC().Perform(context.Background(), "bob", "greet", "alice", 2*time.Second)
	if err != nil || got != "hello alice" {
		t.Fatalf("Perform = %q, %v", got, err)
	}
	req := <-reqs
	if req.Caller != "alice" || req.Method != "greet" || req.Payload != "alice" || req.ID == "" {
		t.Fatalf("handler saw %+v", req)
	}
	// The request carries at least 8 s, as the JS SDK sends.
	if req.ResponseTimeout != 8*time.Second {
		t.Fatalf("handler's response timeout %v, want 8s", req.ResponseTimeout)
	}

	// The wire: alice sent one request to bob; bob an ack, then the response, to alice.
	sent := alice.sentPackets()
	if len(sent) != 1 {
		t.Fatalf("alice sent %d packets", len(sent))
	}
	r := sent[0].GetRpcRequest()
	if r.GetId() != req.ID || r.GetVersion() != 1 || r.GetResponseTimeoutMs() != 8000 ||
		sent[0].GetKind() != livekit.DataPacket_RELIABLE || sent[0].GetDestinationIdentities()[0] != "bob" {
		t.Fatalf("request packet %v", sent[0])
	}
	back := bob.sentPackets()
	if len(back) != 2 || back[0].GetRpcAck().GetRequestId() != req.ID ||
		back[1].GetRpcResponse().GetRequestId() != req.ID || back[1].GetRpcResponse().GetPayload() != "hello alice" {
		t.Fatalf("bob sent %v", back)
	}
	for _, p := range back {
		if p.GetKind() != livekit.DataPacket_RELIABLE || len(p.GetDestinationIdentities()) != 1 || p.GetDestinationIdentities()[0] != "alice" {
			t.Fatalf("reply not reliable to the caller: %v", p)
		}
	}

	// An empty response is a success too (protobuf encodes it as no value).
	mustRegister(t, bob, "empty", func(context.Context, RPCRequest) (string, error) { return "", nil })
	if got, err := alice.hub.RPC().Perform(context.Background(), "bob", "empty", "", 0); err != nil || got != "" {
		t.Fatalf("empty: %q, %v", got, err)
	}
	// Longer timeouts are passed as given.
	alice.clearSent()
	alice.hub.RPC().Perform(context.Background(), "bob", "empty", "", 20*time.Second)
	if ms := alice.sentPackets()[0].GetRpcRequest().GetResponseTimeoutMs(); ms != 20000 {
		t.Fatalf("response_timeout_ms %d, want 20000", ms)
	}
}

func TestRPCErrors(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	tests := []struct {
		name    string
		handler RPCHandler // registered as "m" unless nil
		method  string
		payload string
		code    uint32
		message string
		data    string
	}{
		{
			name: "application error with data",
			handler: func(context.Context, RPCRequest) (string, error) {
				return "", NewRPCError(4001, "room full", `{"max":8}`)
			},
			code: 4001, message: "room full", data: `{"max":8}`,
		},
		{
			name: "wrapped RPCError",
			handler: func(context.Context, RPCRequest) (string, error) {
				return "", fmt.Errorf("camera: %w", NewRPCError(4002, "busy", ""))
			},
			code: 4002, message: "busy",
		},
		{
			name:    "plain error",
			handler: func(context.Context, RPCRequest) (string, error) { return "", errors.New("disk on fire") },
			code:    RPCApplicationError, message: "disk on fire",
		},
		{
			name:    "message truncated to 256 bytes",
			handler: func(context.Context, RPCRequest) (string, error) { return "", NewRPCError(1500, long, "") },
			code:    RPCApplicationError, message: long[:256],
		},
		{
			name:    "panic",
			handler: func(context.Context, RPCRequest) (string, error) { panic("bug") },
			code:    RPCApplicationError, message: "Application error in method handler",
		},
		{
			name:   "unknown method",
			method: "nope",
			code:   RPCUnsupportedMethod, message: "Method not supported at destination",
		},
		{
			name:    "request too large",
			handler: func(context.Context, RPCRequest) (string, error) { return "ok", nil },
			payload: strings.Repeat("x", MaxRPCPayloadBytes+1),
			code:    RPCRequestPayloadTooLarge, message: "Request payload too large",
		},
		{
			name: "response too large",
			handler: func(context.Context, RPCRequest) (string, error) {
				return strings.Repeat("x", MaxRPCPayloadBytes+1), nil
			},
			code: RPCResponsePayloadTooLarge, message: "Response payload too large",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alice, bob := newDataPair(t, DataHubOptions{})
			if tc.handler != nil {
				mustRegister(t, bob, "m", tc.handler)
			}
			method := tc.method
			if method == "" {
				method = "m"
			}
			_, err := alice.hub.RPC().Perform(context.Background(), "bob", method, tc.payload, time.Second)
			var re *RPCError
			if !errors.As(err, &re) {
				t.Fatalf("err %v, want *RPCError", err)
			}
			if re.Code != tc.code || re.Message != tc.message || re.Data != tc.data {
				t.Fatalf("got %d %q %q, want %d %q %q", re.Code, re.Message, re.Data, tc.code, tc.message, tc.data)
			}
			if !errors.Is(err, &RPCError{Code: tc.code}) {
				t.Fatalf("errors.Is by code failed for %v", err)
			}
			if tc.code == RPCRequestPayloadTooLarge && len(alice.sentPackets()) != 0 {
				t.Fatal("an oversized request was sent")
			}
		})
	}
}

// TestRPCIncomingRequestChecks feeds raw requests a JS caller could send.
func TestRPCIncomingRequestChecks(t *testing.T) {
	tests := []struct {
		name string
		req  *livekit.RpcRequest
		code uint32 // 0: success
	}{
		{"version 1", &livekit.RpcRequest{Id: "r1", Method: "echo", Payload: "p", ResponseTimeoutMs: 8000, Version: 1}, 0},
		{"version 2", &livekit.RpcRequest{Id: "r2", Method: "echo", Payload: "p", ResponseTimeoutMs: 8000, Version: 2}, RPCUnsupportedVersion},
		{"version 0", &livekit.RpcRequest{Id: "r3", Method: "echo", Payload: "p", ResponseTimeoutMs: 8000}, RPCUnsupportedVersion},
		{"payload too large", &livekit.RpcRequest{Id: "r4", Method: "echo", Payload: strings.Repeat("x", MaxRPCPayloadBytes+1), Version: 1}, RPCRequestPayloadTooLarge},
		{"unknown method", &livekit.RpcRequest{Id: "r5", Method: "nope", Version: 1}, RPCUnsupportedMethod},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordSender{}
			h := NewDataHub(rec, DataHubOptions{})
			h.RPC().Register("echo", func(_ context.Context, r RPCRequest) (string, error) { return r.Payload, nil })
			h.Handle(&livekit.DataPacket{ParticipantIdentity: "js", ParticipantSid: "PA_js",
				Value: &livekit.DataPacket_RpcRequest{RpcRequest: tc.req}})
			defer h.Close()
			sent := rec.waitPackets(t, 2)
			if len(sent) != 2 || sent[0].GetRpcAck().GetRequestId() != tc.req.Id {
				t.Fatalf("want ack then response, sent %v", sent)
			}
			resp := sent[1].GetRpcResponse()
			if resp.GetRequestId() != tc.req.Id || resp.GetError().GetCode() != tc.code {
				t.Fatalf("response %v, want code %d", resp, tc.code)
			}
			if tc.code == 0 && resp.GetPayload() != tc.req.Payload {
				t.Fatalf("payload %q", resp.GetPayload())
			}
		})
	}
}

func TestRPCNoAck(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{RPC: RPCOptions{AckTimeout: 20 * time.Millisecond}})
	mustRegister(t, bob, "m", func(context.Context, RPCRequest) (string, error) { return "", nil })
	for _, tc := range []struct {
		name string
		dest string
		drop bool
	}{
		{"nobody with that identity", "nobody", false},
		{"link drops the request", "bob", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice.set(tc.drop, nil)
			_, err := alice.hub.RPC().Perform(context.Background(), tc.dest, "m", "", 10*time.Second)
			if rpcCode(err) != RPCConnectionTimeout {
				t.Fatalf("err %v, want code 1501", err)
			}
		})
	}
}

func TestRPCAckButNoResponse(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	started, ended := make(chan struct{}, 1), make(chan error, 1)
	mustRegister(t, bob, "slow", blockUntilDone(started, ended))
	_, err := alice.hub.RPC().Perform(context.Background(), "bob", "slow", "", 50*time.Millisecond)
	if rpcCode(err) != RPCResponseTimeout {
		t.Fatalf("err %v, want code 1502", err)
	}
	wait(t, started, "handler start")
	if acks := bob.sentPackets(); len(acks) != 1 || acks[0].GetRpcAck() == nil {
		t.Fatalf("bob sent %v, want one ack", acks)
	}
}

func TestRPCHandlerDeadlineIsResponseTimeout(t *testing.T) {
	rec := &recordSender{}
	h := NewDataHub(rec, DataHubOptions{})
	defer h.Close()
	started, ended := make(chan struct{}, 1), make(chan error, 1)
	h.RPC().Register("slow", blockUntilDone(started, ended))
	h.Handle(&livekit.DataPacket{ParticipantIdentity: "js", Value: &livekit.DataPacket_RpcRequest{
		RpcRequest: &livekit.RpcRequest{Id: "r", Method: "slow", ResponseTimeoutMs: 30, Version: 1}}})
	wait(t, started, "handler start")
	if err := wait(t, ended, "handler deadline"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handler ctx ended with %v", err)
	}
}

func TestRPCContextCancel(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	started, ended := make(chan struct{}, 1), make(chan error, 1)
	mustRegister(t, bob, "slow", blockUntilDone(started, ended))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := alice.hub.RPC().Perform(ctx, "bob", "slow", "", time.Minute)
		errc <- err
	}()
	wait(t, started, "handler start")
	cancel()
	if err := wait(t, errc, "Perform"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	alice.hub.RPC().mu.Lock()
	n := len(alice.hub.RPC().pending)
	alice.hub.RPC().mu.Unlock()
	if n != 0 {
		t.Fatalf("%d calls still pending", n)
	}

	// A ctx already done never waits.
	if _, err := alice.hub.RPC().Perform(ctx, "bob", "slow", "", time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("done ctx: %v", err)
	}
}

func TestRPCCloseStopsHandlers(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	started, ended := make(chan struct{}, 1), make(chan error, 1)
	mustRegister(t, bob, "slow", blockUntilDone(started, ended))
	aliceStarted := make(chan struct{}, 1)
	mustRegister(t, alice, "slow", blockUntilDone(aliceStarted, make(chan error, 1)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aliceCall := make(chan error, 1)
	go func() { _, err := alice.hub.RPC().Perform(ctx, "bob", "slow", "", time.Minute); aliceCall <- err }()
	wait(t, started, "handler start")
	bobCall := make(chan error, 1)
	go func() {
		_, err := bob.hub.RPC().Perform(context.Background(), "alice", "slow", "", time.Minute)
		bobCall <- err
	}()
	wait(t, aliceStarted, "alice's handler start") // bob's call is pending

	closed := make(chan struct{})
	go func() { bob.hub.Close(); close(closed) }()
	wait(t, closed, "Close")
	select {
	case err := <-ended: // Close waited for the handler
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler ctx ended with %v", err)
		}
	default:
		t.Fatal("Close returned before its handler did")
	}
	// bob's own pending call fails at once.
	if err := wait(t, bobCall, "bob's Perform"); rpcCode(err) != RPCRecipientDisconnected || !errors.Is(err, ErrRPCClosed) {
		t.Fatalf("bob's call: %v", err)
	}
	// The cancelled handler is not answered; alice's call waits until her ctx ends.
	for _, p := range bob.sentPackets() {
		if p.GetRpcResponse() != nil {
			t.Fatalf("bob answered after Close: %v", p)
		}
	}
	cancel()
	if err := wait(t, aliceCall, "alice's Perform"); !errors.Is(err, context.Canceled) {
		t.Fatalf("alice's call: %v", err)
	}
	// Requests after Close are ignored.
	bob.clearSent()
	bob.hub.Handle(&livekit.DataPacket{ParticipantIdentity: "alice", Value: &livekit.DataPacket_RpcRequest{
		RpcRequest: &livekit.RpcRequest{Id: "late", Method: "slow", Version: 1}}})
	if n := len(bob.sentPackets()); n != 0 {
		t.Fatalf("bob sent %d packets after Close", n)
	}
}

func TestRPCFailEndsPendingCalls(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	started, ended := make(chan struct{}, 1), make(chan error, 1)
	mustRegister(t, bob, "slow", blockUntilDone(started, ended))
	mustRegister(t, bob, "fast", func(context.Context, RPCRequest) (string, error) { return "ok", nil })
	gone := errors.New("session gone")
	for _, tc := range []struct {
		name string
		end  func()
		is   error
	}{
		{"Fail", func() { alice.hub.RPC().Fail(gone) }, gone},
		{"Reset", func() { alice.hub.Reset(gone); alice.rejoin() }, gone},
		{"ParticipantLeft", func() { alice.hub.ParticipantLeft("bob") }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() {
				_, err := alice.hub.RPC().Perform(context.Background(), "bob", "slow", "", time.Minute)
				errc <- err
			}()
			wait(t, started, "handler start")
			tc.end()
			err := wait(t, errc, "Perform")
			if rpcCode(err) != RPCRecipientDisconnected || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err %v, want code 1503 wrapping %v", err, tc.is)
			}
			// The engine is still usable.
			if got, err := alice.hub.RPC().Perform(context.Background(), "bob", "fast", "", time.Second); err != nil || got != "ok" {
				t.Fatalf("after %s: %q, %v", tc.name, got, err)
			}
		})
	}
}

func TestRPCCallerLeftCancelsHandler(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	started, ended := make(chan struct{}, 1), make(chan error, 1)
	mustRegister(t, bob, "slow", blockUntilDone(started, ended))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go alice.hub.RPC().Perform(ctx, "bob", "slow", "", time.Minute)
	wait(t, started, "handler start")
	bob.hub.ParticipantLeft("carol") // someone else: no effect
	bob.hub.ParticipantLeft("alice")
	if err := wait(t, ended, "handler end"); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ctx ended with %v", err)
	}
	bob.hub.Close() // wait for the handler goroutine
	if sent := bob.sentPackets(); len(sent) != 1 || sent[0].GetRpcAck() == nil {
		t.Fatalf("bob sent %v, want only the ack", sent)
	}
}

func TestRPCSpoofedReplyIgnored(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	started, ended := make(chan struct{}, 1), make(chan error, 1)
	mustRegister(t, bob, "slow", blockUntilDone(started, ended))
	errc := make(chan error, 1)
	go func() {
		_, err := alice.hub.RPC().Perform(context.Background(), "bob", "slow", "", 200*time.Millisecond)
		errc <- err
	}()
	wait(t, started, "handler start")
	id := alice.sentPackets()[0].GetRpcRequest().GetId()
	alice.hub.Handle(&livekit.DataPacket{ParticipantIdentity: "mallory", Value: &livekit.DataPacket_RpcResponse{
		RpcResponse: &livekit.RpcResponse{RequestId: id, Value: &livekit.RpcResponse_Payload{Payload: "forged"}}}})
	if err := wait(t, errc, "Perform"); rpcCode(err) != RPCResponseTimeout {
		t.Fatalf("err %v, want the real outcome (1502), not mallory's reply", err)
	}
}

func TestRPCRegister(t *testing.T) {
	alice, bob := newDataPair(t, DataHubOptions{})
	ok := func(context.Context, RPCRequest) (string, error) { return "ok", nil }
	mustRegister(t, bob, "m", ok)
	if err := bob.hub.RPC().Register("m", ok); err == nil {
		t.Fatal("registered a method twice")
	}
	bob.hub.RPC().Unregister("m")
	if _, err := alice.hub.RPC().Perform(context.Background(), "bob", "m", "", time.Second); rpcCode(err) != RPCUnsupportedMethod {
		t.Fatalf("after Unregister: %v", err)
	}
	mustRegister(t, bob, "m", ok)
	if _, err := alice.hub.RPC().Perform(context.Background(), "", "m", "", time.Second); err == nil {
		t.Fatal("Perform without destination succeeded")
	}
}

func TestRPCSendFailed(t *testing.T) {
	alice, _ := newDataPair(t, DataHubOptions{})
	down := errors.New("channel closed")
	alice.set(false, down)
	_, err := alice.hub.RPC().Perform(context.Background(), "bob", "m", "", time.Second)
	if rpcCode(err) != RPCSendFailed || !errors.Is(err, down) {
		t.Fatalf("err %v, want code 1505 wrapping the send error", err)
	}
}
