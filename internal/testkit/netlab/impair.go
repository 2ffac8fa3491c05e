//go:build linux

package netlab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Side is one end of the lab's veth. Its impairments act on packets leaving the namespace
// through rbx0 (egress), so Device.Loss(10) drops device->server UDP and Server.Loss(10)
// server->device UDP; a round trip crossing both loses about 19 %. Loopback traffic inside a
// namespace is never touched. The methods fail the test on error and must be called from the
// test goroutine; settings replace earlier ones of the same kind.
type Side struct {
	NS string // namespace name
	IP string // address on rbx0

	lab *Lab

	mu      sync.Mutex
	loss    int   // percent of egress UDP dropped
	allowed []int // with block: UDP destination ports still allowed
	block   bool
	shaped  bool
}

// DefaultRateLatency is the tbf queue Rate allows: packets that would wait longer are dropped.
const DefaultRateLatency = 100 * time.Millisecond

// Loss drops percent % (0..100) of the UDP packets leaving this side, independently at random
// (nftables numgen). TCP (signaling, HTTP) is not affected. Loss(0) removes the rule.
//
// The drop happens at rbx0's netdev egress hook, after routing, as on the wire: the sender
// is not told (a drop in the inet output hook would fail its sendto with EPERM, which no real
// network does and which a WebRTC stack may treat differently from silent loss).
func (s *Side) Loss(percent int) {
	s.lab.t.Helper()
	if percent < 0 || percent > 100 {
		s.lab.t.Fatalf("netlab: Loss(%d): percent must be 0..100", percent)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loss = percent
	s.applyNFT()
}

// Block drops every UDP packet leaving this side except those to the given destination
// ports. Block on the device side with the TURN server's port leaves the relay as the only
// UDP path to the server, so ICE must use relay candidates. Unblock removes it.
func (s *Side) Block(exceptDstPorts ...int) {
	s.lab.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = true
	s.allowed = slices.Clone(exceptDstPorts)
	s.applyNFT()
}

// Unblock removes Block's rule.
func (s *Side) Unblock() {
	s.lab.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = false
	s.allowed = nil
	s.applyNFT()
}

// Rate limits everything leaving this side (all protocols) to kbit kbit/s with a token bucket
// (tc tbf) whose queue holds DefaultRateLatency of traffic; Rate(0) removes the limit.
func (s *Side) Rate(kbit int) {
	s.lab.t.Helper()
	s.RateLatency(kbit, DefaultRateLatency)
}

// RateLatency is Rate with the tbf queue bounded to latency instead of DefaultRateLatency.
// The bucket's burst is the larger of 20 ms of traffic and two full-size frames.
func (s *Side) RateLatency(kbit int, latency time.Duration) {
	s.lab.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if kbit <= 0 {
		s.unshape()
		return
	}
	burst := max(kbit*1000/8/50, 2*1514)
	lat := max(latency.Milliseconds(), 1)
	err := run("tc", "-n", s.NS, "qdisc", "replace", "dev", Link, "root", "tbf",
		"rate", strconv.Itoa(kbit)+"kbit", "burst", strconv.Itoa(burst), "latency", strconv.FormatInt(lat, 10)+"ms")
	if err != nil {
		s.lab.t.Fatalf("netlab: %v", err)
	}
	s.shaped = true
}

// Clear removes every impairment of this side.
func (s *Side) Clear() {
	s.lab.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loss, s.block, s.allowed = 0, false, nil
	s.applyNFT()
	s.unshape()
}

// Clear removes every impairment on both sides.
func (l *Lab) Clear() {
	l.t.Helper()
	l.Device.Clear()
	l.Server.Clear()
}

func (s *Side) unshape() {
	if !s.shaped {
		return
	}
	if err := run("tc", "-n", s.NS, "qdisc", "del", "dev", Link, "root"); err != nil {
		s.lab.t.Fatalf("netlab: %v", err)
	}
	s.shaped = false
}

// applyNFT replaces the side's nftables tables with ones built from its settings, in one
// transaction (add + delete + define), or leaves no table when nothing is set: "inet netlab"
// holds Block (output hook, so a blocked sender gets EPERM, like a local firewall's reject),
// "netdev netlab" holds Loss (egress hook on rbx0, a silent drop).
func (s *Side) applyNFT() {
	var b strings.Builder
	b.WriteString("add table inet netlab\ndelete table inet netlab\n")
	b.WriteString("add table netdev netlab\ndelete table netdev netlab\n")
	if s.block {
		b.WriteString("table inet netlab {\n\tchain egress {\n\t\ttype filter hook output priority 0; policy accept;\n")
		if len(s.allowed) > 0 {
			ports := make([]string, len(s.allowed))
			for i, p := range s.allowed {
				ports[i] = strconv.Itoa(p)
			}
			fmt.Fprintf(&b, "\t\toifname %q udp dport != { %s } drop\n", Link, strings.Join(ports, ", "))
		} else {
			fmt.Fprintf(&b, "\t\toifname %q meta l4proto udp drop\n", Link)
		}
		b.WriteString("\t}\n}\n")
	}
	if s.loss > 0 {
		fmt.Fprintf(&b, "table netdev netlab {\n\tchain egress {\n\t\ttype filter hook egress device %q priority 0; policy accept;\n", Link)
		if s.loss >= 100 {
			b.WriteString("\t\tmeta l4proto udp drop\n")
		} else {
			fmt.Fprintf(&b, "\t\tmeta l4proto udp numgen random mod 100 < %d drop\n", s.loss)
		}
		b.WriteString("\t}\n}\n")
	}
	if _, err := outputStdin(b.String(), "ip", "netns", "exec", s.NS, "nft", "-f", "-"); err != nil {
		s.lab.t.Fatalf("netlab: nft in %s: %v\n%s", s.NS, err, b.String())
	}
}
