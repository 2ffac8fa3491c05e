package lktest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"

	"roombox/internal/testkit/faultnet"
	"roombox/internal/testkit/lktest"
)

// TestClusterRoomFailover: two nodes behind a balancer. A room created through the balancer
// is known to both nodes and reachable through either; after its node is killed the API
// through the balancer answers from the survivor at once, and once livekit writes the dead
// node off, CreateRoom re-homes the room on the survivor.
func TestClusterRoomFailover(t *testing.T) {
	begin := time.Now()
	c := lktest.StartCluster(t, 2)
	t.Logf("cluster of %d nodes up in %v: %s", len(c.Nodes), time.Since(begin).Round(time.Millisecond), c.Addrs())
	lb := faultnet.NewLoadBalancer(t, c.Addrs()...)
	api := lktest.NewAPI(lb.URL("http"))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const room = "failover"
	created, err := api.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: room, EmptyTimeout: 120})
	if err != nil {
		t.Fatal(err)
	}
	host, err := c.RoomHost(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	routed, found, err := c.RoomNodeID(ctx, room)
	if err != nil || !found || routed != host.NodeID() {
		t.Fatalf("room_node_map[%s] = %q, %v, %v; want the host %s", room, routed, found, err, host.NodeID())
	}
	other := otherNode(c, host)
	t.Logf("room %s (%s) on %s; other node %s", room, created.GetSid(), host.NodeID(), other.NodeID())

	// The other node knows the room (the room store is redis) ...
	if rooms, err := other.ListRooms(ctx); err != nil || !hasRoom(rooms, room) {
		t.Fatalf("ListRooms via the other node = %v, %v; want %s", rooms, err, room)
	}
	// ... and routes to it: CreateRoom through it is a psrpc call to the host node.
	again, err := other.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: room})
	if err != nil || again.GetSid() != created.GetSid() {
		t.Fatalf("CreateRoom via the other node = %v, %v; want sid %s", again, err, created.GetSid())
	}
	if h, err := c.RoomHost(ctx, room); err != nil || h != host {
		t.Fatalf("after CreateRoom via the other node the room moved: %v, %v", h, err)
	}

	// The host dies. The balancer sends new connections to the survivor, which answers from
	// redis at once (the room is still listed: nothing removes a dead node's rooms).
	killed := time.Now()
	host.Kill()
	rooms, err := api.ListRooms(ctx)
	if err != nil || !hasRoom(rooms, room) {
		t.Fatalf("ListRooms through the balancer after the kill = %v, %v", rooms, err)
	}
	if lb.LastTarget() != other.Addr() {
		t.Fatalf("balancer used %s; want the survivor %s", lb.LastTarget(), other.Addr())
	}
	if _, err := c.RoomHost(ctx, room); !errors.Is(err, lktest.ErrNoHost) {
		t.Fatalf("RoomHost after the kill: %v; want ErrNoHost", err)
	}

	// livekit writes the dead node off NodeStatsInterval..NodeAvailableSeconds after the kill.
	if err := c.WaitNodeUnavailable(ctx, host); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed node unavailable %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	if d := time.Since(killed); d > (lktest.NodeAvailableSeconds+2)*time.Second {
		t.Errorf("node written off after %v; livekit's rule says at most %ds", d, lktest.NodeAvailableSeconds)
	}

	// Now CreateRoom through the balancer re-homes the room on the survivor, same sid (the
	// room record in redis is reused).
	rehomed, err := api.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: room})
	if err != nil {
		t.Fatal(err)
	}
	if rehomed.GetSid() != created.GetSid() {
		t.Errorf("re-homed room sid %s; want the original %s", rehomed.GetSid(), created.GetSid())
	}
	if h, err := c.RoomHost(ctx, room); err != nil || h != other {
		t.Fatalf("RoomHost after re-homing = %v, %v; want the survivor", h, err)
	}
	if id, _, err := c.RoomNodeID(ctx, room); err != nil || id != other.NodeID() {
		t.Fatalf("room_node_map after re-homing = %q, %v; want %s", id, err, other.NodeID())
	}
	t.Logf("room re-homed %v after the kill", time.Since(killed).Round(10*time.Millisecond))
}

// TestClusterJoinAfterHostDies documents what a client sees when the node hosting its room,
// which is also the node its signal connection reaches, dies: its WebSocket breaks; a full
// join through the balancer lands on the survivor, in the same room (same sid), after a
// delay while livekit still routes to the dead node (each try at the dead node times out
// after psrpc's 3 s); a resume (reconnect=1) is answered with a Leave, so the client must
// join afresh.
func TestClusterJoinAfterHostDies(t *testing.T) {
	c := lktest.StartCluster(t, 2)
	lb := faultnet.NewLoadBalancer(t, c.Addrs()...) // signal goes to Nodes[0] while it lives
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const room = "rejoin"
	host, survivor := c.Nodes[0], c.Nodes[1]
	if _, err := c.CreateRoomOn(ctx, host, &livekit.CreateRoomRequest{Name: room}); err != nil {
		t.Fatal(err)
	}
	box := signalJoin(ctx, t, lb.URL("ws"), lktest.Token(t, room, "box"), "")
	defer box.close()
	other := signalJoin(ctx, t, lb.URL("ws"), lktest.Token(t, room, "other"), "")
	defer other.close()
	join := box.res.GetJoin()
	if join == nil || other.res.GetJoin() == nil {
		t.Fatalf("first joins: %v / %v; want JoinResponses", box.res, other.res)
	}
	sid := join.GetRoom().GetSid()
	if h, err := c.RoomHost(ctx, room); err != nil || h != host {
		t.Fatalf("RoomHost = %v, %v; want Nodes[0]", h, err)
	}

	killed := time.Now()
	host.Kill()
	if err := box.drain(10 * time.Second); err == nil || websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("signal connection to the killed node ended with %v; want an abrupt end", err)
	}

	// A full join right after the crash, as a device that lost its signal connection does.
	again := signalJoin(ctx, t, lb.URL("ws"), lktest.Token(t, room, "box"), "")
	defer again.close()
	t.Logf("full join after the kill answered %v after the kill (the join itself %v)",
		time.Since(killed).Round(10*time.Millisecond), again.took.Round(10*time.Millisecond))
	j := again.res.GetJoin()
	if j == nil {
		t.Fatalf("join after the kill = %v; want a JoinResponse", again.res)
	}
	if j.GetRoom().GetSid() != sid {
		t.Errorf("room sid after re-homing = %s; want the original %s", j.GetRoom().GetSid(), sid)
	}
	if lb.LastTarget() != survivor.Addr() {
		t.Errorf("balancer used %s; want the survivor", lb.LastTarget())
	}
	if h, err := c.RoomHost(ctx, room); err != nil || h != survivor {
		t.Fatalf("RoomHost after the join = %v, %v; want the survivor", h, err)
	}

	// A resume of a participant the survivor never had: Leave (reconnect), not a resume.
	res := signalJoin(ctx, t, lb.URL("ws"), lktest.Token(t, room, "other"), other.res.GetJoin().GetParticipant().GetSid())
	defer res.close()
	t.Logf("resume on the survivor: %v", res.res)
	if l := res.res.GetLeave(); l == nil || l.GetReason() != livekit.DisconnectReason_STATE_MISMATCH ||
		l.GetAction() != livekit.LeaveRequest_RECONNECT {
		t.Errorf("resume after re-homing = %v; want Leave{STATE_MISMATCH, RECONNECT}", res.res)
	}

	// Participant records in redis outlive their node: the API still lists "other", who was
	// on the dead node and never came back.
	parts, err := survivor.ListParticipants(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range parts {
		ids = append(ids, p.GetIdentity())
	}
	slices.Sort(ids)
	t.Logf("participants listed after re-homing: %v", ids)
	if !slices.Equal(ids, []string{"box", "other"}) {
		t.Errorf("participants after re-homing = %v; want [box other] (other is a ghost from the dead node)", ids)
	}
}

// TestClusterRelayedHostDies: the client's signal connection reaches one node and its room
// is hosted on another, which dies. The signal node answers pings itself, so pongs keep
// coming; it notices only when forwarding a client message to the dead node has failed for
// signal_relay.retry_timeout (7.5 s), and then closes the WebSocket normally (1000) without
// a Leave. Without client messages it would not notice at all.
func TestClusterRelayedHostDies(t *testing.T) {
	c := lktest.StartCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const room = "relayed"
	signal, host := c.Nodes[0], c.Nodes[1]
	if _, err := c.CreateRoomOn(ctx, host, &livekit.CreateRoomRequest{Name: room}); err != nil {
		t.Fatal(err)
	}
	sc := signalJoin(ctx, t, signal.URL, lktest.Token(t, room, "box"), "")
	defer sc.close()
	if sc.res.GetJoin() == nil {
		t.Fatalf("join = %v", sc.res)
	}
	if h, err := c.RoomHost(ctx, room); err != nil || h != host {
		t.Fatalf("RoomHost = %v, %v; want Nodes[1]", h, err)
	}

	killed := time.Now()
	host.Kill()
	msgs := make(chan *livekit.SignalResponse, 64)
	ended := make(chan error, 1)
	go func() { ended <- sc.readAll(msgs, 30*time.Second) }()
	defer func() { sc.close(); <-ended }()

	ping := time.NewTicker(500 * time.Millisecond)
	defer ping.Stop()
	var lastPong time.Duration
	var endErr error
loop:
	for {
		select {
		case m := <-msgs:
			switch {
			case m.GetPongResp() != nil:
				lastPong = time.Since(killed)
			case m.GetLeave() != nil:
				t.Errorf("got a Leave: %v", m)
			}
		case endErr = <-ended:
			ended <- endErr // for the deferred wait
			break loop
		case <-ping.C:
			if err := sc.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_PingReq{
				PingReq: &livekit.Ping{Timestamp: time.Now().UnixMilli()},
			}}); err != nil {
				t.Fatalf("ping: %v", err)
			}
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	t.Logf("signal connection closed %v after the host died (%v); last pong %v after",
		time.Since(killed).Round(10*time.Millisecond), endErr, lastPong.Round(10*time.Millisecond))
	if !websocket.IsCloseError(endErr, websocket.CloseNormalClosure) {
		t.Errorf("signal connection ended with %v; want a normal close", endErr)
	}
	if lastPong < 2*time.Second {
		t.Errorf("last pong %v after the kill; want pongs to go on (answered by the signal node)", lastPong)
	}
}

type signalConn struct {
	conn *websocket.Conn
	res  *livekit.SignalResponse
	took time.Duration
}

func (s *signalConn) close() {
	if s.conn != nil {
		s.conn.Close()
	}
}

func (s *signalConn) send(req *livekit.SignalRequest) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return s.conn.WriteMessage(websocket.BinaryMessage, b)
}

// readAll passes every SignalResponse to out until the connection ends or nothing arrives for
// idle, and returns the error that ended it.
func (s *signalConn) readAll(out chan<- *livekit.SignalResponse, idle time.Duration) error {
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(idle))
		typ, data, err := s.conn.ReadMessage()
		if err != nil {
			return err
		}
		if typ != websocket.BinaryMessage {
			continue
		}
		res := &livekit.SignalResponse{}
		if err := proto.Unmarshal(data, res); err != nil {
			return err
		}
		select {
		case out <- res:
		default: // the test stopped listening
		}
	}
}

// drain reads and drops messages until the connection ends (or idle passes) and returns the
// error that ended it.
func (s *signalConn) drain(idle time.Duration) error {
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(idle))
		if _, _, err := s.conn.ReadMessage(); err != nil {
			return err
		}
	}
}

// signalJoin opens livekit's v0 signal WebSocket (/rtc with query parameters) and returns the
// first SignalResponse (JoinResponse, or Leave for a refused resume). A non-empty sid makes
// it a resume (reconnect=1). The handshake waits for the server's first message, so it may
// take seconds while the server retries a dead node.
func signalJoin(ctx context.Context, t *testing.T, wsURL, token, sid string) *signalConn {
	t.Helper()
	q := url.Values{
		"access_token":   {token},
		"protocol":       {"16"},
		"sdk":            {"go"},
		"auto_subscribe": {"1"},
	}
	if sid != "" {
		q.Set("reconnect", "1")
		q.Set("sid", sid)
	}
	d := websocket.Dialer{HandshakeTimeout: 40 * time.Second}
	begin := time.Now()
	conn, resp, err := d.DialContext(ctx, wsURL+"/rtc?"+q.Encode(), nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = fmt.Sprintf(" (HTTP %d)", resp.StatusCode)
			resp.Body.Close()
		}
		t.Fatalf("signal join after %v: %v%s", time.Since(begin).Round(10*time.Millisecond), err, status)
	}
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("signal join: HTTP %d", resp.StatusCode)
	}
	sc := &signalConn{conn: conn}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			t.Fatalf("signal read: %v", err)
		}
		if typ != websocket.BinaryMessage {
			continue
		}
		res := &livekit.SignalResponse{}
		if err := proto.Unmarshal(data, res); err != nil {
			conn.Close()
			t.Fatalf("signal response: %v", err)
		}
		sc.res, sc.took = res, time.Since(begin)
		return sc
	}
}

func otherNode(c *lktest.Cluster, s *lktest.Server) *lktest.Server {
	for _, n := range c.Nodes {
		if n != s {
			return n
		}
	}
	return nil
}

func hasRoom(rooms []*livekit.Room, name string) bool {
	return slices.ContainsFunc(rooms, func(r *livekit.Room) bool { return r.GetName() == name })
}
