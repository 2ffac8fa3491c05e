package signaling

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// Transport carries signal messages. The client owns one per session; fakes in tests.
type Transport interface {
	Send(ctx context.Context, req *livekit.SignalRequest) error
	// Recv blocks until the next server message, ctx ends, or the transport fails.
	Recv(ctx context.Context) (*livekit.SignalResponse, error)
	Close() error
}

// ErrTransportClosed is returned by Recv/Send after Close or after the socket failed.
var ErrTransportClosed = errors.New("signaling: transport closed")

const (
	// ProtocolVersion is the signal protocol we announce (livekit-server v1.13.5's current).
	ProtocolVersion = 16
	// sdkVersion is reported as the Go SDK's version: >= 2.4.0 lets the server use SCTP
	// zero-checksum, which pion supports.
	sdkVersion = "2.4.0"
	// maxMessageSize bounds a server frame; larger ones end the session (then reconnect)
	// instead of growing memory on a small device.
	maxMessageSize = 1 << 20
	writeTimeout   = 5 * time.Second
)

// DialParams are the connection's query parameters beyond the token.
type DialParams struct {
	AutoSubscribe bool
	// Reconnect with ParticipantSID resumes an existing participant after its signal
	// connection was lost.
	Reconnect       bool
	ParticipantSID  string
	ReconnectReason livekit.ReconnectReason
}

// signalURL builds the v0 `/rtc` URL: without join_request the server uses two peer
// connections (publisher + subscriber), the mode pion clients have used longest.
func signalURL(serverURL, token string, p DialParams) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("signaling: server url %q: %w", serverURL, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("signaling: server url %q: scheme must be ws or wss", serverURL)
	}
	u.Path = singleSlashJoin(u.Path, "rtc")
	q := url.Values{}
	q.Set("access_token", token)
	q.Set("protocol", strconv.Itoa(ProtocolVersion))
	q.Set("sdk", "go")
	q.Set("version", sdkVersion)
	q.Set("os", runtime.GOOS)
	q.Set("auto_subscribe", boolParam(p.AutoSubscribe))
	if p.Reconnect {
		q.Set("reconnect", "1")
		q.Set("sid", p.ParticipantSID)
		q.Set("reconnect_reason", strconv.Itoa(int(p.ReconnectReason)))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func singleSlashJoin(base, elem string) string {
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	return base + "/" + elem
}

func boolParam(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// wsTransport is a Transport over a gorilla WebSocket: one reader goroutine it owns,
// writes serialized by a mutex (gorilla allows one concurrent writer).
type wsTransport struct {
	conn *websocket.Conn
	in   chan *livekit.SignalResponse

	wmu sync.Mutex

	closeOnce sync.Once
	done      chan struct{} // closed by Close
	readerErr error         // set before readerDone closes
	readerEnd chan struct{}
}

// Dial opens the signal WebSocket. An HTTP error from the server (bad token, room limits)
// comes back with the status and the server's reason text.
func Dial(ctx context.Context, serverURL, token string, p DialParams) (Transport, error) {
	u, err := signalURL(serverURL, token, p)
	if err != nil {
		return nil, err
	}
	// gorilla applies ctx's deadline to the handshake but not its cancellation: expire the
	// raw connection when ctx ends, so closing the device never waits out a stuck server.
	var mu sync.Mutex
	var raw net.Conn
	nd := &net.Dialer{}
	d := websocket.Dialer{
		HandshakeTimeout: 15 * time.Second,
		Proxy:            http.ProxyFromEnvironment,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			mu.Lock()
			raw = c
			mu.Unlock()
			return c, err
		},
	}
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if raw != nil {
			_ = raw.SetDeadline(time.Unix(1, 0))
		}
	})
	conn, resp, err := d.DialContext(ctx, u, nil)
	if !stop() && err == nil {
		// ctx ended as the handshake finished: the connection's deadline is already spent.
		_ = conn.Close()
		return nil, fmt.Errorf("signaling: connect: %w", ctx.Err())
	}
	if err != nil {
		switch {
		case resp != nil:
			return nil, fmt.Errorf("signaling: connect: %w", httpError(resp))
		case ctx.Err() != nil:
			return nil, fmt.Errorf("signaling: connect: %w", ctx.Err())
		}
		return nil, fmt.Errorf("signaling: connect: %w", err)
	}
	conn.SetReadLimit(maxMessageSize)
	t := &wsTransport{
		conn:      conn,
		in:        make(chan *livekit.SignalResponse, 32),
		done:      make(chan struct{}),
		readerEnd: make(chan struct{}),
	}
	go t.readLoop()
	return t, nil
}

// HTTPError is the server refusing the WebSocket upgrade.
type HTTPError struct {
	Status int
	Reason string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.Status, e.Reason)
}

func httpError(resp *http.Response) error {
	defer resp.Body.Close()
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	return &HTTPError{Status: resp.StatusCode, Reason: string(buf[:n])}
}

func (t *wsTransport) readLoop() {
	defer close(t.readerEnd)
	for {
		typ, data, err := t.conn.ReadMessage()
		if err != nil {
			t.readerErr = fmt.Errorf("signaling: read: %w", err)
			return
		}
		if typ != websocket.BinaryMessage {
			continue // the protocol is protobuf in binary frames; text frames carry nothing for us
		}
		msg := &livekit.SignalResponse{}
		if err := proto.Unmarshal(data, msg); err != nil {
			t.readerErr = fmt.Errorf("signaling: bad server message (%d bytes): %w", len(data), err)
			return
		}
		select {
		case t.in <- msg:
		case <-t.done:
			return
		}
	}
}

func (t *wsTransport) Recv(ctx context.Context) (*livekit.SignalResponse, error) {
	select {
	case msg := <-t.in:
		return msg, nil
	case <-t.readerEnd:
		// Drain what was read before the failure, then report it.
		select {
		case msg := <-t.in:
			return msg, nil
		default:
		}
		if t.readerErr != nil {
			return nil, t.readerErr
		}
		return nil, ErrTransportClosed
	case <-t.done:
		return nil, ErrTransportClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *wsTransport) Send(ctx context.Context, req *livekit.SignalRequest) error {
	data, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("signaling: marshal: %w", err)
	}
	deadline := time.Now().Add(writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	select {
	case <-t.done:
		return ErrTransportClosed
	default:
	}
	_ = t.conn.SetWriteDeadline(deadline)
	if err := t.conn.WriteMessage(websocket.BinaryMessage, data); err != nil {
		return fmt.Errorf("signaling: write: %w", err)
	}
	return nil
}

// Close closes the socket and waits for the reader goroutine.
func (t *wsTransport) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.done)
		t.wmu.Lock()
		_ = t.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		t.wmu.Unlock()
		err = t.conn.Close()
		<-t.readerEnd
	})
	return err
}
