package lktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// How livekit-server v1.13.5 notices a dead node in a redis cluster (numbers from its source):
//
//   - Every node refreshes its livekit.Node entry in the redis hash "nodes" every
//     node_stats.stats_update_interval, default 2 s (pkg/config/config.go
//     DefaultNodeStatsConfig; the ping/RegisterNode loop is statsWorker/keepaliveWorker in
//     pkg/routing/redisrouter.go). Stats.UpdatedAt is whole Unix seconds
//     (pkg/telemetry/prometheus/node.go GetNodeStats).
//   - A node is "available" while time.Now().Unix()-Stats.UpdatedAt < 5
//     (pkg/routing/selector/utils.go AvailableSeconds, IsAvailable). This is a constant, not
//     configurable. So a killed node is written off between 2 and 5 s after its death.
//   - Nothing removes a killed node or its rooms: "nodes" is only pruned by RemoveDeadNodes
//     when some node starts (pkg/service/server.go), and "room_node_map" and the room in
//     "rooms" stay until a node re-homes and later closes the room.
//   - A join or CreateRoom for a room whose node is still "available" is routed to it over
//     psrpc and fails by timeout; once it is not, StandardRoomAllocator.SelectRoomNode
//     (pkg/service/roomallocator.go) picks an available node and rewrites room_node_map.
const (
	// NodeStatsInterval is how often a livekit node refreshes its stats in redis (default
	// node_stats.stats_update_interval).
	NodeStatsInterval = 2 * time.Second
	// NodeAvailableSeconds is how many whole seconds old a node's stats may be before
	// livekit considers the node dead (selector.AvailableSeconds).
	NodeAvailableSeconds = 5
)

// Redis keys livekit-server v1.13.5 uses (pkg/routing/redisrouter.go, pkg/service/redisstore.go).
const (
	RedisNodesKey    = "nodes"         // hash node id -> livekit.Node
	RedisRoomNodeKey = "room_node_map" // hash room name -> node id
	RedisRoomsKey    = "rooms"         // hash room name -> livekit.Room
)

// ErrNoHost is returned by RoomHost when no running node hosts the room.
var ErrNoHost = errors.New("lktest: no running node hosts the room")

// Cluster is n livekit-server nodes sharing one redis-server, as a multi-node deployment:
// each node has its own HTTP and UDP port, node_ip 127.0.0.1, and the default node selector
// ("any", sort_by random: a new room goes to a random available node; there is no region
// setting, so every node is in the same, empty, region).
type Cluster struct {
	Nodes []*Server
	Redis *Redis

	t testing.TB
}

// StartCluster starts redis-server and n livekit-server nodes using it, and waits until every
// node is registered in redis and available. opts apply to every node (after the redis
// setting, so a hook may change it). It fails the test on error; t.Cleanup stops the nodes,
// then redis.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("lktest: StartCluster: n = %d", n)
	}
	c := &Cluster{Redis: StartRedis(t), t: t}
	addr := c.Redis.Addr
	withRedis := WithConfig(func(cfg *Config) {
		if cfg.Extra == nil {
			cfg.Extra = map[string]any{}
		}
		cfg.Extra["redis"] = map[string]any{"address": addr}
	})
	for range n {
		c.Nodes = append(c.Nodes, Start(t, append([]Option{withRedis}, opts...)...))
	}

	ctx, cancel := context.WithTimeout(context.Background(), defaultStartTimeout)
	defer cancel()
	for i, s := range c.Nodes {
		if s.NodeID() == "" {
			t.Fatalf("lktest: node %d: no node id in %s", i, s.LogPath)
		}
		if err := c.waitNode(ctx, s, true); err != nil {
			t.Fatalf("lktest: node %d (%s): %v", i, s.NodeID(), err)
		}
	}
	return c
}

// Addrs returns each node's 127.0.0.1:PORT (signal and API), in Nodes order, e.g. as the
// targets of a faultnet.LoadBalancer.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Kill crashes node i (SIGKILL) and returns it. Its redis entries stay, as after a real crash.
func (c *Cluster) Kill(i int) *Server {
	s := c.Nodes[i]
	s.Kill()
	return s
}

// CreateRoomOn creates req's room on node (CreateRoomRequest.NodeId, asked of node itself),
// so a test can choose whether the room's host is also the node its clients' signal
// connections reach. A room already placed on an available node stays there.
func (c *Cluster) CreateRoomOn(ctx context.Context, node *Server, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	req = proto.CloneOf(req)
	req.NodeId = node.NodeID()
	return node.CreateRoom(ctx, req)
}

// Node returns the node whose last start had node id id, or nil.
func (c *Cluster) Node(id string) *Server {
	for _, s := range c.Nodes {
		if s.NodeID() == id {
			return s
		}
	}
	return nil
}

// Running returns the nodes whose process runs.
func (c *Cluster) Running() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.Running() {
			out = append(out, s)
		}
	}
	return out
}

// RoomNodeID returns the node id redis routes room to (room_node_map), which may be a dead
// node's until a join or CreateRoom re-homes the room. found is false if the room has none.
func (c *Cluster) RoomNodeID(ctx context.Context, room string) (id string, found bool, err error) {
	return c.Redis.HGet(ctx, RedisRoomNodeKey, room)
}

// RoomHost returns the running node that actually hosts room (has it in its room manager,
// per its development-mode /debug/rooms), or ErrNoHost. Every node lists every room through
// the API (ListRooms reads redis), so the API cannot tell.
func (c *Cluster) RoomHost(ctx context.Context, room string) (*Server, error) {
	var host *Server
	for _, s := range c.Running() {
		names, err := s.localRooms(ctx)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if n != room {
				continue
			}
			if host != nil {
				return nil, fmt.Errorf("lktest: room %q is hosted by both %s and %s", room, host.NodeID(), s.NodeID())
			}
			host = s
		}
	}
	if host == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoHost, room)
	}
	return host, nil
}

// WaitRoomHost polls RoomHost every 100 ms until room is hosted by a running node or ctx ends.
func (c *Cluster) WaitRoomHost(ctx context.Context, room string) (*Server, error) {
	return poll(ctx, func() (*Server, error) { return c.RoomHost(ctx, room) })
}

// NodeInfo returns s's entry in redis (of its last start), or an error wrapping
// ErrNotRegistered if there is none.
func (c *Cluster) NodeInfo(ctx context.Context, s *Server) (*livekit.Node, error) {
	id := s.NodeID()
	data, found, err := c.Redis.HGet(ctx, RedisNodesKey, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %s", ErrNotRegistered, id)
	}
	n := &livekit.Node{}
	if err := proto.Unmarshal([]byte(data), n); err != nil {
		return nil, fmt.Errorf("lktest: node %s: %w", id, err)
	}
	return n, nil
}

// ErrNotRegistered: the node has no entry in redis (never started, or stopped gracefully).
var ErrNotRegistered = errors.New("lktest: node not registered in redis")

// NodeAvailable reports whether livekit would place a room on s (or keep one there): its
// redis entry is SERVING and its stats are less than NodeAvailableSeconds old, the rule of
// selector.GetAvailableNodes.
func (c *Cluster) NodeAvailable(ctx context.Context, s *Server) (bool, error) {
	n, err := c.NodeInfo(ctx, s)
	if errors.Is(err, ErrNotRegistered) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return nodeAvailable(n, time.Now()), nil
}

// WaitNodeUnavailable polls every 100 ms until livekit considers s dead (see NodeAvailable),
// i.e. until rooms routed to it are re-homed by the next join or CreateRoom; for a killed
// node that is 2 to 5 s after the kill.
func (c *Cluster) WaitNodeUnavailable(ctx context.Context, s *Server) error {
	_, err := poll(ctx, func() (struct{}, error) {
		ok, err := c.NodeAvailable(ctx, s)
		if err == nil && ok {
			err = fmt.Errorf("node %s still available", s.NodeID())
		}
		return struct{}{}, err
	})
	return err
}

func (c *Cluster) waitNode(ctx context.Context, s *Server, available bool) error {
	_, err := poll(ctx, func() (struct{}, error) {
		ok, err := c.NodeAvailable(ctx, s)
		if err == nil && ok != available {
			err = fmt.Errorf("node %s available = %v, want %v", s.NodeID(), ok, available)
		}
		return struct{}{}, err
	})
	return err
}

// nodeAvailable is selector.IsAvailable && State == SERVING (pkg/routing/selector/utils.go).
func nodeAvailable(n *livekit.Node, now time.Time) bool {
	if n.GetState() != livekit.NodeState_SERVING {
		return false
	}
	if n.GetStats() == nil {
		return true
	}
	return now.Unix()-n.GetStats().GetUpdatedAt() < NodeAvailableSeconds
}

// poll calls f every 100 ms until it succeeds or ctx ends; then it returns the last error.
func poll[T any](ctx context.Context, f func() (T, error)) (T, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		v, err := f()
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Addr returns the server's 127.0.0.1:PORT (HTTP and signal WebSocket).
func (s *Server) Addr() string {
	return "127.0.0.1:" + strconv.Itoa(s.Config.Port)
}

var nodeIDRe = regexp.MustCompile(`starting LiveKit server.*"nodeID": "([^"]+)"`)

// NodeID returns the node id of the server's last started process (livekit draws a new one
// at every start), read from its "starting LiveKit server" log line; "" if there is none.
// It stays valid after Kill.
func (s *Server) NodeID() string {
	s.mu.Lock()
	off := s.logOff
	s.mu.Unlock()
	m := nodeIDRe.FindStringSubmatch(readFileFrom(s.LogPath, off))
	if m == nil {
		return ""
	}
	return m[1]
}

// localRooms lists the rooms in this node's room manager (GET /debug/rooms, served in
// development mode, which lktest turns on).
func (s *Server) localRooms(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.HTTPURL+"/debug/rooms", nil)
	if err != nil {
		return nil, err
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lktest: %s/debug/rooms: %w", s.HTTPURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("lktest: %s/debug/rooms = %d %q (is development mode off?)", s.HTTPURL, resp.StatusCode, body)
	}
	var rooms []struct{ Name string }
	if err := json.Unmarshal(body, &rooms); err != nil {
		return nil, fmt.Errorf("lktest: %s/debug/rooms: %w", s.HTTPURL, err)
	}
	names := make([]string, len(rooms))
	for i, r := range rooms {
		names[i] = r.Name
	}
	return names, nil
}
