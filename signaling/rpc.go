package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/livekit/protocol/livekit"
)

// LiveKit RPC error codes (the JS SDK's RpcError.ErrorCode).
const (
	RPCApplicationError        uint32 = 1500 // the handler failed
	RPCConnectionTimeout       uint32 = 1501 // no ack from the destination
	RPCResponseTimeout         uint32 = 1502 // ack, but no response in time
	RPCRecipientDisconnected   uint32 = 1503 // the destination (or this client) left
	RPCResponsePayloadTooLarge uint32 = 1504
	RPCSendFailed              uint32 = 1505 // the request could not be written
	RPCUnsupportedMethod       uint32 = 1400
	RPCRecipientNotFound       uint32 = 1401
	RPCRequestPayloadTooLarge  uint32 = 1402
	RPCUnsupportedServer       uint32 = 1403
	RPCUnsupportedVersion      uint32 = 1404
)

const (
	// MaxRPCPayloadBytes bounds request and response payloads of RPC version 1.
	MaxRPCPayloadBytes = 15360
	// rpcMaxMessageBytes and rpcMaxDataBytes bound an RpcError's message and data (the JS
	// SDK truncates to these).
	rpcMaxMessageBytes = 256
	rpcMaxDataBytes    = 15360
	// rpcMinResponseTimeout is the least response_timeout_ms a request carries: the JS SDK
	// clamps to its 7 s round trip + 1 s.
	rpcMinResponseTimeout = 8 * time.Second
)

var rpcMessages = map[uint32]string{
	RPCApplicationError:        "Application error in method handler",
	RPCConnectionTimeout:       "Connection timeout",
	RPCResponseTimeout:         "Response timeout",
	RPCRecipientDisconnected:   "Recipient disconnected",
	RPCResponsePayloadTooLarge: "Response payload too large",
	RPCSendFailed:              "Failed to send",
	RPCUnsupportedMethod:       "Method not supported at destination",
	RPCRecipientNotFound:       "Recipient not found",
	RPCRequestPayloadTooLarge:  "Request payload too large",
	RPCUnsupportedServer:       "RPC not supported by server",
	RPCUnsupportedVersion:      "Unsupported RPC version",
}

// ErrRPCClosed is Perform after Close, and the cause of the RPCRecipientDisconnected
// error of calls pending when the engine closed.
var ErrRPCClosed = errors.New("signaling: rpc engine closed")

// RPCError is an RPC failure with a LiveKit error code: the remote's error, a built-in one
// (timeouts, unsupported method, ...) or, returned by a handler, the error to send back.
// errors.Is matches RPCErrors by code; Unwrap gives the local cause, if any.
type RPCError struct {
	Code    uint32
	Message string
	Data    string
	cause   error
}

// NewRPCError returns an error with a code and message; a handler returns it to send them
// (and data) to the caller.
func NewRPCError(code uint32, message, data string) *RPCError {
	return &RPCError{Code: code, Message: message, Data: data}
}

func rpcBuiltIn(code uint32, cause error) *RPCError {
	return &RPCError{Code: code, Message: rpcMessages[code], cause: cause}
}

func (e *RPCError) Error() string {
	msg := fmt.Sprintf("signaling: rpc error %d: %s", e.Code, e.Message)
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

// Unwrap returns the local cause (a send error, the session's end), if any.
func (e *RPCError) Unwrap() error { return e.cause }

// Is reports whether target is an *RPCError with the same code.
func (e *RPCError) Is(target error) bool {
	t, ok := target.(*RPCError)
	return ok && t.Code == e.Code
}

func (e *RPCError) toProto() *livekit.RpcError {
	return &livekit.RpcError{
		Code:    e.Code,
		Message: truncateUTF8(e.Message, rpcMaxMessageBytes),
		Data:    truncateUTF8(e.Data, rpcMaxDataBytes),
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// RPCRequest is an incoming call, as its handler sees it.
type RPCRequest struct {
	ID              string
	Caller          string // identity of the calling participant
	Method          string
	Payload         string
	ResponseTimeout time.Duration // how long the caller waits; the handler's ctx ends then
}

// RPCHandler answers calls to one method. Its ctx ends when the caller stops waiting
// (the request's response timeout), when the caller leaves the room, or when the engine
// closes; handlers must return promptly then. A returned *RPCError is sent with its code,
// message and data; any other error is sent as RPCApplicationError with its text.
type RPCHandler func(ctx context.Context, req RPCRequest) (string, error)

// RPCOptions configure the RPC engine. Zero values are the JS SDK's.
type RPCOptions struct {
	// AckTimeout is how long Perform waits for the destination's ack (default 7 s).
	AckTimeout time.Duration
	// DefaultResponseTimeout is Perform's timeout when it is given none, and a handler's
	// when a request carries none (default 15 s).
	DefaultResponseTimeout time.Duration
}

// RPCEngine implements LiveKit RPC version 1 over data packets (the JS SDK's
// RpcClientManager and RpcServerManager, v1 path). The DataHub feeds it incoming packets.
//
// Lifecycle: nothing happens on a resume (pending calls keep waiting, the resend buffer
// delivers what was lost). Fail is the session gone without resume: pending calls fail at
// once, the engine stays usable. Close is the end: handlers are cancelled and waited for,
// pending calls fail, Perform fails with ErrRPCClosed.
type RPCEngine struct {
	send func(context.Context, *livekit.DataPacket) error // reliable
	log  *slog.Logger
	opts RPCOptions

	ctx    context.Context // parent of handler contexts; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // running handlers

	mu       sync.Mutex
	closed   bool
	handlers map[string]RPCHandler
	pending  map[string]*rpcCall    // outgoing, by request id
	running  map[string]*rpcServing // incoming, by request id
}

type rpcCall struct {
	dest  string
	acked chan struct{}  // closed on ack
	done  chan rpcResult // one result
	ack   bool           // guarded by RPCEngine.mu
}

type rpcResult struct {
	payload string
	err     error
}

type rpcServing struct {
	caller string
	cancel context.CancelFunc
	gone   bool // the caller left: no response; guarded by RPCEngine.mu
}

func newRPCEngine(send func(context.Context, *livekit.DataPacket) error, log *slog.Logger, opts RPCOptions) *RPCEngine {
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 7 * time.Second
	}
	if opts.DefaultResponseTimeout <= 0 {
		opts.DefaultResponseTimeout = 15 * time.Second
	}
	r := &RPCEngine{
		send:     send,
		log:      log,
		opts:     opts,
		handlers: map[string]RPCHandler{},
		pending:  map[string]*rpcCall{},
		running:  map[string]*rpcServing{},
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// Register answers calls to method with h. A method has one handler: registering it again
// is an error until Unregister.
func (r *RPCEngine) Register(method string, h RPCHandler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.handlers[method]; ok {
		return fmt.Errorf("signaling: rpc method %q already registered", method)
	}
	r.handlers[method] = h
	return nil
}

// Unregister stops answering method (calls in flight finish); later calls get
// RPCUnsupportedMethod.
func (r *RPCEngine) Unregister(method string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.handlers, method)
}

// Perform calls method on the participant with identity destination and returns its
// response. responseTimeout <= 0 means 15 s; the request tells the callee at least 8 s,
// as the JS SDK does, but Perform waits only responseTimeout. Errors: *RPCError for the
// remote's error and for RPCRequestPayloadTooLarge, RPCConnectionTimeout (no ack within
// 7 s), RPCResponseTimeout, RPCRecipientDisconnected and RPCSendFailed; ctx.Err() when ctx
// ends first; ErrRPCClosed after Close.
func (r *RPCEngine) Perform(ctx context.Context, destination, method, payload string, responseTimeout time.Duration) (string, error) {
	if destination == "" {
		return "", errors.New("signaling: rpc: empty destination identity")
	}
	if len(payload) > MaxRPCPayloadBytes {
		return "", rpcBuiltIn(RPCRequestPayloadTooLarge, nil)
	}
	if responseTimeout <= 0 {
		responseTimeout = r.opts.DefaultResponseTimeout
	}
	id := uuid.NewString()
	call := &rpcCall{dest: destination, acked: make(chan struct{}), done: make(chan rpcResult, 1)}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return "", ErrRPCClosed
	}
	r.pending[id] = call
	r.mu.Unlock()
	defer r.forget(id)

	err := r.send(ctx, &livekit.DataPacket{
		DestinationIdentities: []string{destination},
		Value: &livekit.DataPacket_RpcRequest{RpcRequest: &livekit.RpcRequest{
			Id:                id,
			Method:            method,
			Payload:           payload,
			ResponseTimeoutMs: uint32(min(max(responseTimeout, rpcMinResponseTimeout).Milliseconds(), math.MaxUint32)),
			Version:           1,
		}},
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", rpcBuiltIn(RPCSendFailed, err)
	}

	ackTimer := time.NewTimer(r.opts.AckTimeout)
	defer ackTimer.Stop()
	respTimer := time.NewTimer(responseTimeout)
	defer respTimer.Stop()
	acked, ackTimeout := call.acked, ackTimer.C
	for {
		select {
		case res := <-call.done:
			return res.payload, res.err
		case <-acked:
			acked, ackTimeout = nil, nil
		case <-ackTimeout:
			select {
			case <-call.acked: // arrived at the same moment
				acked, ackTimeout = nil, nil
				continue
			default:
			}
			return "", rpcBuiltIn(RPCConnectionTimeout, nil)
		case <-respTimer.C:
			return "", rpcBuiltIn(RPCResponseTimeout, nil)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (r *RPCEngine) forget(id string) {
	r.mu.Lock()
	delete(r.pending, id)
	r.mu.Unlock()
}

// Fail ends every pending call with RPCRecipientDisconnected wrapping err: the session is
// gone and will not resume, so no ack or response can arrive. Registered methods and
// handlers in flight are unaffected, and new calls may be made (on the next session).
func (r *RPCEngine) Fail(err error) {
	r.failPending(func(*rpcCall) bool { return true }, err)
}

// ParticipantLeft ends pending calls to identity with RPCRecipientDisconnected and
// cancels, unanswered, the handlers serving its requests.
func (r *RPCEngine) ParticipantLeft(identity string) {
	r.failPending(func(c *rpcCall) bool { return c.dest == identity }, nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.running {
		if s.caller == identity {
			s.gone = true
			s.cancel()
		}
	}
}

func (r *RPCEngine) failPending(match func(*rpcCall) bool, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, c := range r.pending {
		if match(c) {
			delete(r.pending, id)
			c.done <- rpcResult{err: rpcBuiltIn(RPCRecipientDisconnected, cause)}
		}
	}
}

// Close cancels the handlers in flight and waits for them to return (unanswered), fails
// pending calls with RPCRecipientDisconnected wrapping ErrRPCClosed, and ignores requests
// from then on. It is idempotent.
func (r *RPCEngine) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.failPending(func(*rpcCall) bool { return true }, ErrRPCClosed)
	r.wg.Wait()
}

func (r *RPCEngine) handleAck(from string, ack *livekit.RpcAck) {
	id := ack.GetRequestId()
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.pending[id]
	switch {
	case c == nil:
		r.log.Debug("rpc ack for no pending request", "request", id, "from", from)
	case c.dest != from:
		r.log.Warn("ignoring rpc ack from another participant", "request", id, "from", from, "dest", c.dest)
	case !c.ack:
		c.ack = true
		close(c.acked)
	}
}

func (r *RPCEngine) handleResponse(from string, resp *livekit.RpcResponse) {
	id := resp.GetRequestId()
	var res rpcResult
	switch v := resp.GetValue().(type) {
	case *livekit.RpcResponse_Payload:
		res.payload = v.Payload
	case *livekit.RpcResponse_Error:
		e := v.Error
		res.err = &RPCError{Code: e.GetCode(), Message: e.GetMessage(), Data: e.GetData()}
	case nil:
		// An empty payload is encoded as no value at all.
	default:
		// compressed_payload is for clients announcing client_protocol >= 1; this one
		// announces 0, so a peer sending it is broken.
		res.err = rpcBuiltIn(RPCApplicationError, fmt.Errorf("unsupported response encoding %T", v))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.pending[id]
	switch {
	case c == nil:
		r.log.Debug("rpc response for no pending request", "request", id, "from", from)
	case c.dest != from:
		r.log.Warn("ignoring rpc response from another participant", "request", id, "from", from, "dest", c.dest)
	default:
		delete(r.pending, id)
		if !c.ack {
			r.log.Debug("rpc response before ack", "request", id)
		}
		c.done <- res
	}
}

// handleRequest starts serving an incoming request; it does not block.
func (r *RPCEngine) handleRequest(caller string, req *livekit.RpcRequest) {
	id := req.GetId()
	if caller == "" || id == "" {
		r.log.Warn("ignoring rpc request without caller or id", "caller", caller, "request", id)
		return
	}
	timeout := time.Duration(req.GetResponseTimeoutMs()) * time.Millisecond
	if timeout <= 0 {
		timeout = r.opts.DefaultResponseTimeout
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if _, dup := r.running[id]; dup {
		r.log.Debug("ignoring repeated rpc request", "request", id, "caller", caller)
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	s := &rpcServing{caller: caller, cancel: cancel}
	r.running[id] = s
	h := r.handlers[req.GetMethod()]
	r.wg.Add(1)
	go r.serve(ctx, s, h, RPCRequest{
		ID: id, Caller: caller, Method: req.GetMethod(), Payload: req.GetPayload(), ResponseTimeout: timeout,
	}, req.GetVersion())
}

// serve acks a request, runs its handler and sends the response.
func (r *RPCEngine) serve(ctx context.Context, s *rpcServing, h RPCHandler, req RPCRequest, version uint32) {
	defer r.wg.Done()
	defer func() {
		s.cancel()
		r.mu.Lock()
		delete(r.running, req.ID)
		r.mu.Unlock()
	}()
	dest := []string{req.Caller}
	if r.ctx.Err() != nil {
		return // closing
	}
	if err := r.send(r.ctx, &livekit.DataPacket{
		DestinationIdentities: dest,
		Value:                 &livekit.DataPacket_RpcAck{RpcAck: &livekit.RpcAck{RequestId: req.ID}},
	}); err != nil {
		r.log.Warn("rpc ack not sent", "request", req.ID, "method", req.Method, "err", err)
	}

	resp := &livekit.RpcResponse{RequestId: req.ID}
	var rerr *RPCError
	switch {
	case version != 1:
		rerr = rpcBuiltIn(RPCUnsupportedVersion, nil)
	case len(req.Payload) > MaxRPCPayloadBytes:
		rerr = rpcBuiltIn(RPCRequestPayloadTooLarge, nil)
	case h == nil:
		rerr = rpcBuiltIn(RPCUnsupportedMethod, nil)
	default:
		payload, err := r.call(ctx, h, req)
		switch {
		case err != nil:
			if !errors.As(err, &rerr) {
				r.log.Warn("rpc handler failed", "method", req.Method, "caller", req.Caller, "err", err)
				rerr = &RPCError{Code: RPCApplicationError, Message: err.Error()}
			}
		case len(payload) > MaxRPCPayloadBytes:
			r.log.Warn("rpc response payload too large", "method", req.Method, "bytes", len(payload))
			rerr = rpcBuiltIn(RPCResponsePayloadTooLarge, nil)
		default:
			resp.Value = &livekit.RpcResponse_Payload{Payload: payload}
		}
	}
	if rerr != nil {
		resp.Value = &livekit.RpcResponse_Error{Error: rerr.toProto()}
	}

	r.mu.Lock()
	skip := r.closed || s.gone
	r.mu.Unlock()
	if skip {
		return
	}
	if err := r.send(r.ctx, &livekit.DataPacket{
		DestinationIdentities: dest,
		Value:                 &livekit.DataPacket_RpcResponse{RpcResponse: resp},
	}); err != nil {
		r.log.Warn("rpc response not sent", "request", req.ID, "method", req.Method, "err", err)
	}
}

// call runs a handler; a panic becomes an application error instead of ending the device.
func (r *RPCEngine) call(ctx context.Context, h RPCHandler, req RPCRequest) (payload string, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("rpc handler panicked", "method", req.Method, "panic", p, "stack", string(debug.Stack()))
			payload, err = "", rpcBuiltIn(RPCApplicationError, nil)
		}
	}()
	return h(ctx, req)
}
