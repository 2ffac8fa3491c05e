//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

// TURN credentials and realm of every lab relay.
const (
	TURNUser  = "netlab"
	TURNPass  = "netlab-pass"
	TURNRealm = "netlab"
)

// TURN is a pion/turn server (UDP only) listening on ServerIP in the lab's server namespace.
// Its relay sockets, also in the server namespace on ServerIP, are DelayConns: each relayed
// packet is held Delay in each direction, so a round trip through the relay is at least
// 2×Delay longer than the direct one. The listening socket is not delayed (allocation is quick).
type TURN struct {
	URL  string // turn:10.231.N.2:PORT?transport=udp
	Host string // ServerIP
	Port int
	User string
	Pass string

	server *turn.Server

	mu     sync.Mutex
	delay  time.Duration
	relays []*DelayConn
}

// StartDelayTURN starts a TURN relay in the lab's server namespace that delays relayed
// packets by delay each way, and returns its URL and static credentials. t.Cleanup stops it.
func StartDelayTURN(t testing.TB, lab *Lab, delay time.Duration) (url, user, pass string) {
	t.Helper()
	s := StartTURN(t, lab, delay)
	return s.URL, s.User, s.Pass
}

// StartTURN is StartDelayTURN returning the server, for its Port, SetDelay and Stats.
func StartTURN(t testing.TB, lab *Lab, delay time.Duration) *TURN {
	t.Helper()
	pc, err := lab.ListenPacket(lab.ServerNS, "udp4", net.JoinHostPort(lab.ServerIP, "0"))
	if err != nil {
		t.Fatalf("netlab: turn listener: %v", err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	s := &TURN{
		URL:   fmt.Sprintf("turn:%s?transport=udp", net.JoinHostPort(lab.ServerIP, strconv.Itoa(port))),
		Host:  lab.ServerIP,
		Port:  port,
		User:  TURNUser,
		Pass:  TURNPass,
		delay: delay,
	}
	key := turn.GenerateAuthKey(TURNUser, TURNRealm, TURNPass)
	s.server, err = turn.NewServer(turn.ServerConfig{
		Realm: TURNRealm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			if ra.Username != TURNUser {
				return "", nil, false
			}
			return ra.Username, key, true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            pc,
			RelayAddressGenerator: &delayRelays{lab: lab, turn: s},
		}},
	})
	if err != nil {
		_ = pc.Close()
		t.Fatalf("netlab: turn server: %v", err)
	}
	t.Cleanup(func() { _ = s.server.Close() })
	return s
}

// SetDelay changes the delay of existing and future relays.
func (s *TURN) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
	for _, r := range s.relays {
		r.SetDelay(d)
	}
}

// Allocations returns the number of live allocations (relays in use).
func (s *TURN) Allocations() int { return s.server.AllocationCount() }

// Stats returns the packets relayed (both directions, all relays so far) and those dropped
// because a delay queue was full.
func (s *TURN) Stats() (relayed, dropped int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.relays {
		n, d := r.Stats()
		relayed += n
		dropped += d
	}
	return relayed, dropped
}

// delayRelays allocates relay sockets in the server namespace on ServerIP, wrapped in
// DelayConns. AllocatePacketConn runs on pion's goroutines, hence the explicit namespace.
type delayRelays struct {
	lab  *Lab
	turn *TURN
}

var errTCPRelay = errors.New("netlab: the lab TURN server relays UDP only")

func (r *delayRelays) Validate() error { return nil }

func (r *delayRelays) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if conf.Network != "udp4" && conf.Network != "udp" {
		return nil, nil, fmt.Errorf("netlab: turn relay network %q: only udp4", conf.Network)
	}
	pc, err := r.lab.ListenPacket(r.lab.ServerNS, "udp4", net.JoinHostPort(r.lab.ServerIP, strconv.Itoa(conf.RequestedPort)))
	if err != nil {
		return nil, nil, err
	}
	r.turn.mu.Lock()
	dc := NewDelayConn(pc, r.turn.delay)
	r.turn.relays = append(r.turn.relays, dc)
	r.turn.mu.Unlock()
	return dc, pc.LocalAddr(), nil
}

func (r *delayRelays) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errTCPRelay
}

func (r *delayRelays) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errTCPRelay
}
