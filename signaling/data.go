package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// MaxDataPacketBytes is the largest encoded data packet the hub sends (LiveKit's limit).
const MaxDataPacketBytes = 64000

// Errors of the data hub. Callers compare with errors.Is.
var (
	ErrDataTooLarge = errors.New("signaling: data packet larger than 64000 bytes")
	ErrDataClosed   = errors.New("signaling: data hub closed")
	// ErrResendBufferFull: a reliable packet sent while the hub is suspended (resuming) did
	// not fit the resend buffer, so it could not be kept for Resend.
	ErrResendBufferFull = errors.New("signaling: reliable resend buffer full")
)

// DataSender writes a marshalled data packet to the `_reliable` or `_lossy` data channel
// of the current session. The hub calls it for reliable packets one at a time, in sequence
// order; lossy packets may be sent concurrently.
type DataSender interface {
	SendData(ctx context.Context, pkt *livekit.DataPacket, reliable bool) error
}

// DataMessage is user data received from the room.
type DataMessage struct {
	From     string // sender identity; empty for data sent by the server API
	Topic    string
	Payload  []byte
	Reliable bool
}

// DataOptions say how to publish user data.
type DataOptions struct {
	Reliable     bool
	Topic        string
	Destinations []string // identities; empty sends to everyone in the room
}

// DataHubOptions configure a DataHub. Zero values are defaults.
type DataHubOptions struct {
	Logger *slog.Logger
	// OnData receives user data. Calls are serialized (never concurrent) and run on the
	// goroutine that called Handle; it must not block.
	OnData func(DataMessage)
	// ResendPackets and ResendBytes bound the reliable packets kept for Resend
	// (default 64 packets, 1 MiB; bytes are at least MaxDataPacketBytes).
	ResendPackets int
	ResendBytes   int
	// Now is the clock for the receive de-duplication state (default time.Now).
	Now func() time.Time
	RPC RPCOptions
}

// receiveStateTTL is how long the last reliable sequence of a sender is remembered for
// de-duplication (the JS SDK's value).
const receiveStateTTL = 30 * time.Second

// DataHub is the room's data layer over a session's data channels: it sends user data and
// RPC packets with reliable sequence numbers, keeps recent reliable packets to resend after
// a resume, de-duplicates and decodes incoming packets, and owns the RPC engine.
//
// Session lifecycle, in the JS SDK's terms:
//   - a data channel message, decoded by the session: Handle;
//   - the connection is lost and a resume starts: Suspend;
//   - the resume succeeded (ReconnectResponse.last_message_seq): Resend; SyncState's
//     datachannel_receive_states: ReceiveStates;
//   - the session is replaced by a full reconnect (new participant): Reset;
//   - a remote participant left: ParticipantLeft;
//   - leaving the room for good: Close.
type DataHub struct {
	sender DataSender
	log    *slog.Logger
	onData func(DataMessage)
	now    func() time.Time
	rpc    *RPCEngine

	maxPackets, maxBytes int
	suspended            atomic.Bool // reliable packets are queued for Resend, lossy dropped

	// sendMu serializes reliable sends: sequence numbers reach the wire in order (the
	// server drops a sequence <= the last it saw), and Resend is not interleaved.
	sendMu   sync.Mutex
	seq      uint32 // last reliable sequence assigned
	buf      []sentPacket
	bufBytes int
	closed   bool

	handleMu sync.Mutex // serializes Handle: OnData and the RPC engine see packets in order
	recv     map[string]receiveState
}

type sentPacket struct {
	pkt  *livekit.DataPacket
	size int
	sent bool // handed to the sender; false while queued for Resend
}

type receiveState struct {
	seq uint32
	at  time.Time
}

// NewDataHub returns a hub that sends through s.
func NewDataHub(s DataSender, opts DataHubOptions) *DataHub {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ResendPackets <= 0 {
		opts.ResendPackets = 64
	}
	if opts.ResendBytes <= 0 {
		opts.ResendBytes = 1 << 20
	}
	opts.ResendBytes = max(opts.ResendBytes, MaxDataPacketBytes)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &DataHub{
		sender:     s,
		log:        opts.Logger,
		onData:     opts.OnData,
		now:        opts.Now,
		maxPackets: opts.ResendPackets,
		maxBytes:   opts.ResendBytes,
		recv:       map[string]receiveState{},
	}
	h.rpc = newRPCEngine(h.sendReliable, opts.Logger, opts.RPC)
	return h
}

// RPC is the hub's RPC engine.
func (h *DataHub) RPC() *RPCEngine { return h.rpc }

// Publish sends user data to the room.
func (h *DataHub) Publish(ctx context.Context, payload []byte, opts DataOptions) error {
	u := &livekit.UserPacket{Payload: payload}
	if opts.Topic != "" {
		u.Topic = proto.String(opts.Topic)
	}
	return h.SendPacket(ctx, &livekit.DataPacket{
		DestinationIdentities: opts.Destinations,
		Value:                 &livekit.DataPacket_User{User: u},
	}, opts.Reliable)
}

// SendPacket sends a prepared data packet. It sets Kind and, for a reliable packet,
// Sequence, and keeps reliable packets for Resend: the hub owns pkt afterwards.
//
// A reliable packet sent while the hub is suspended, or whose write fails because a
// resume began meanwhile, is queued and sent by Resend: nil then means "queued". A lossy
// packet sent while suspended is dropped (nil), as the JS SDK does.
func (h *DataHub) SendPacket(ctx context.Context, pkt *livekit.DataPacket, reliable bool) error {
	if !reliable {
		return h.sendLossy(ctx, pkt)
	}
	return h.sendReliable(ctx, pkt)
}

func (h *DataHub) sendLossy(ctx context.Context, pkt *livekit.DataPacket) error {
	pkt.Kind = livekit.DataPacket_LOSSY
	pkt.Sequence = 0
	if n := proto.Size(pkt); n > MaxDataPacketBytes {
		return fmt.Errorf("%w (%d bytes)", ErrDataTooLarge, n)
	}
	h.sendMu.Lock()
	closed := h.closed
	h.sendMu.Unlock()
	if closed {
		return ErrDataClosed
	}
	if h.suspended.Load() {
		return nil
	}
	if err := h.sender.SendData(ctx, pkt, false); err != nil {
		return fmt.Errorf("signaling: send lossy data: %w", err)
	}
	return nil
}

func (h *DataHub) sendReliable(ctx context.Context, pkt *livekit.DataPacket) error {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	if h.closed {
		return ErrDataClosed
	}
	pkt.Kind = livekit.DataPacket_RELIABLE
	pkt.Sequence = h.seq + 1
	size := proto.Size(pkt)
	if size > MaxDataPacketBytes {
		return fmt.Errorf("%w (%d bytes)", ErrDataTooLarge, size)
	}
	// Make room: forget the oldest packets already handed to the sender. Packets still
	// queued for Resend are never dropped; a new one that does not fit is refused.
	for len(h.buf) > 0 && h.buf[0].sent &&
		(len(h.buf)+1 > h.maxPackets || h.bufBytes+size > h.maxBytes) {
		h.bufBytes -= h.buf[0].size
		h.buf[0] = sentPacket{}
		h.buf = h.buf[1:]
	}
	if len(h.buf)+1 > h.maxPackets || h.bufBytes+size > h.maxBytes {
		return fmt.Errorf("%w (%d packets, %d bytes queued)", ErrResendBufferFull, len(h.buf), h.bufBytes)
	}
	h.seq = pkt.Sequence
	suspended := h.suspended.Load()
	h.buf = append(h.buf, sentPacket{pkt: pkt, size: size, sent: !suspended})
	h.bufBytes += size
	if suspended {
		return nil
	}
	if err := h.sender.SendData(ctx, pkt, true); err != nil {
		if h.suspended.Load() {
			// A resume started while this was being written: Resend delivers it.
			h.buf[len(h.buf)-1].sent = false
			return nil
		}
		// Not sent and not resent: forget it (a gap in the sequence is fine).
		h.bufBytes -= size
		h.buf[len(h.buf)-1] = sentPacket{}
		h.buf = h.buf[:len(h.buf)-1]
		return fmt.Errorf("signaling: send reliable data: %w", err)
	}
	return nil
}

// Suspend makes the hub queue reliable packets for Resend and drop lossy ones: call it
// when the connection is lost and a resume begins. It does not wait for a send in flight.
func (h *DataHub) Suspend() { h.suspended.Store(true) }

// Resend is the end of a resume: it forgets the reliable packets the server has seen
// (sequence <= lastSeq, ReconnectResponse.last_message_seq), sends the rest in order,
// and ends Suspend. New sends wait until it is done. On error the hub is (left)
// suspended and the unsent packets stay queued for another Resend (or Reset).
func (h *DataHub) Resend(ctx context.Context, lastSeq uint32) error {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	if h.closed {
		return ErrDataClosed
	}
	drop := 0
	for drop < len(h.buf) && h.buf[drop].pkt.Sequence <= lastSeq {
		h.bufBytes -= h.buf[drop].size
		drop++
	}
	clear(h.buf[:drop])
	h.buf = h.buf[drop:]
	switch {
	case lastSeq > h.seq:
		h.log.Warn("server saw more reliable data than was sent", "server_seq", lastSeq, "seq", h.seq)
	case len(h.buf) > 0 && h.buf[0].pkt.Sequence > lastSeq+1, len(h.buf) == 0 && lastSeq < h.seq:
		// Evicted from the buffer (or never sent: a failed send also leaves a gap).
		h.log.Warn("reliable data older than the resend buffer may be lost", "server_seq", lastSeq, "seq", h.seq)
	}
	for i := range h.buf {
		if err := h.sender.SendData(ctx, h.buf[i].pkt, true); err != nil {
			for j := i; j < len(h.buf); j++ {
				h.buf[j].sent = false
			}
			// New packets must not overtake the unsent ones: the server would then drop
			// them as old.
			h.suspended.Store(true)
			return fmt.Errorf("signaling: resend reliable data (seq %d): %w", h.buf[i].pkt.Sequence, err)
		}
		h.buf[i].sent = true
	}
	if len(h.buf) > 0 {
		h.log.Info("resent reliable data", "packets", len(h.buf), "from_seq", h.buf[0].pkt.Sequence)
	}
	h.suspended.Store(false)
	return nil
}

// Reset starts the data session over for a full reconnect (a new participant): the
// resend buffer and receive states are dropped, sequences restart at 1, Suspend ends, and
// pending RPC calls fail with RPCRecipientDisconnected wrapping err. Registered RPC
// methods stay; handlers in flight keep running and answer through the new session.
func (h *DataHub) Reset(err error) {
	h.sendMu.Lock()
	clear(h.buf)
	h.buf, h.bufBytes, h.seq = h.buf[:0], 0, 0
	h.suspended.Store(false)
	h.sendMu.Unlock()
	h.handleMu.Lock()
	clear(h.recv)
	h.handleMu.Unlock()
	h.rpc.Fail(err)
}

// ParticipantLeft tells the hub a remote participant left the room: RPC calls to it fail
// with RPCRecipientDisconnected, and its requests in flight are cancelled unanswered.
func (h *DataHub) ParticipantLeft(identity string) { h.rpc.ParticipantLeft(identity) }

// Close ends the hub for good: the RPC engine closes (handlers cancelled and waited for,
// pending calls failed), the resend buffer is dropped, and sends fail with ErrDataClosed.
func (h *DataHub) Close() {
	h.rpc.Close()
	h.sendMu.Lock()
	h.closed = true
	clear(h.buf)
	h.buf, h.bufBytes = nil, 0
	h.sendMu.Unlock()
}

// ReceiveStates is the last reliable sequence seen from each sender (participant sid) in
// the last 30 s, for SyncState.datachannel_receive_states on a resume.
func (h *DataHub) ReceiveStates() []*livekit.DataChannelReceiveState {
	h.handleMu.Lock()
	defer h.handleMu.Unlock()
	now := h.now()
	out := make([]*livekit.DataChannelReceiveState, 0, len(h.recv))
	for sid, st := range h.recv {
		if now.Sub(st.at) < receiveStateTTL {
			out = append(out, &livekit.DataChannelReceiveState{PublisherSid: sid, LastSeq: st.seq})
		}
	}
	slices.SortFunc(out, func(a, b *livekit.DataChannelReceiveState) int {
		switch {
		case a.PublisherSid < b.PublisherSid:
			return -1
		case a.PublisherSid > b.PublisherSid:
			return 1
		}
		return 0
	})
	return out
}

// Handle dispatches one data packet from the room: user data to OnData, RPC packets to
// the RPC engine. Duplicate reliable packets (a sender's sequence not above the last one
// seen, as after a resume) and packets this client does not use are dropped.
func (h *DataHub) Handle(pkt *livekit.DataPacket) {
	if pkt == nil {
		return
	}
	h.handleMu.Lock()
	defer h.handleMu.Unlock()
	if !h.fresh(pkt) {
		h.log.Debug("dropping duplicate data packet", "sid", pkt.GetParticipantSid(), "seq", pkt.GetSequence())
		return
	}
	from := pkt.GetParticipantIdentity()
	switch v := pkt.GetValue().(type) {
	case *livekit.DataPacket_User:
		u := v.User
		if u == nil {
			h.log.Warn("ignoring empty user data packet", "from", from)
			return
		}
		if from == "" {
			from = u.GetParticipantIdentity() // servers before the top-level field
		}
		if h.onData != nil {
			h.onData(DataMessage{
				From:     from,
				Topic:    u.GetTopic(),
				Payload:  u.GetPayload(),
				Reliable: pkt.GetKind() == livekit.DataPacket_RELIABLE,
			})
		}
	case *livekit.DataPacket_RpcRequest:
		h.rpc.handleRequest(from, v.RpcRequest)
	case *livekit.DataPacket_RpcAck:
		h.rpc.handleAck(from, v.RpcAck)
	case *livekit.DataPacket_RpcResponse:
		h.rpc.handleResponse(from, v.RpcResponse)
	case nil:
		h.log.Debug("ignoring data packet without value", "from", from)
	default:
		h.log.Debug("ignoring data packet", "type", fmt.Sprintf("%T", v), "from", from)
	}
}

// fresh records a reliable packet's sequence per sender and reports whether it is new.
// Packets without a sequence or sender sid (lossy, server API) are always new.
func (h *DataHub) fresh(pkt *livekit.DataPacket) bool {
	seq, sid := pkt.GetSequence(), pkt.GetParticipantSid()
	if seq == 0 || sid == "" {
		return true
	}
	now := h.now()
	if st, ok := h.recv[sid]; ok && now.Sub(st.at) < receiveStateTTL && seq <= st.seq {
		return false
	}
	h.recv[sid] = receiveState{seq: seq, at: now}
	if len(h.recv) > 32 {
		for k, st := range h.recv {
			if now.Sub(st.at) >= receiveStateTTL {
				delete(h.recv, k)
			}
		}
	}
	return true
}
