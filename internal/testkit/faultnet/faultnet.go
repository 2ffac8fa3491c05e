// Package faultnet puts a TCP proxy that a test owns between a client and a server on
// loopback, so the test can break the network under a live connection: cut every connection
// (RST to both ends), refuse new ones (ECONNREFUSED: nothing listens), or black-hole the
// traffic (nothing is forwarded and nothing is closed, so only a timeout notices).
//
// A LoadBalancer is the same proxy in front of several targets: each new connection goes to
// the first target that accepts a TCP connection, as a deployment's balancer with health
// checks would send it to the first live node.
//
// Only the bytes of connections made through the proxy are affected: for LiveKit that is the
// signal WebSocket and the HTTP API; media (ICE over UDP) goes straight to the node's
// node_ip:udp_port from the JoinResponse.
//
// Every goroutine belongs to the proxy; Close (registered with t.Cleanup) stops them all and
// waits for them.
package faultnet

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// dialTimeout bounds one dial to one target. Loopback answers at once (accept or
	// refuse); the bound only matters for a target that is stopped (SIGSTOP).
	dialTimeout = 2 * time.Second
	// relistenTimeout bounds how long Refuse(false) tries to listen on the old port again.
	relistenTimeout = time.Second
	bufSize         = 32 << 10
)

// Proxy forwards TCP connections from Addr to its target. Its methods are safe for concurrent
// use from any goroutine.
type Proxy struct {
	t    testing.TB
	addr string // 127.0.0.1:PORT, the same for the proxy's whole life

	ctx    context.Context // cancelled by Close; bounds dials and gate waits
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loops and connection handlers

	mu       sync.Mutex
	ln       net.Listener // nil while refusing or closed
	targets  []string
	links    map[*link]struct{}
	gate     chan struct{} // closed while forwarding; open (so waits block) while paused
	paused   bool
	refusing bool
	closed   bool
	accepted int
	last     string
}

// link is one client connection and, once dialled, its upstream connection.
type link struct {
	ctx     context.Context // child of Proxy.ctx, cancelled by abort: bounds the dial and gate waits
	cancel  context.CancelFunc
	client  net.Conn
	server  net.Conn // set under Proxy.mu once dialled
	target  string   // set with server
	aborted bool     // under Proxy.mu
}

// NewProxy listens on 127.0.0.1:0 and forwards every connection to target (host:port). It
// fails the test if it cannot listen; t.Cleanup closes it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return newProxy(t, []string{target})
}

func newProxy(t testing.TB, targets []string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultnet: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	open := make(chan struct{})
	close(open)
	p := &Proxy{
		t:       t,
		addr:    ln.Addr().String(),
		ctx:     ctx,
		cancel:  cancel,
		ln:      ln,
		targets: slices.Clone(targets),
		links:   make(map[*link]struct{}),
		gate:    open,
	}
	p.wg.Add(1)
	go p.acceptLoop(ln)
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's listening address, 127.0.0.1:PORT. It does not change, not even
// across Refuse(true) and Refuse(false).
func (p *Proxy) Addr() string { return p.addr }

// URL returns scheme://127.0.0.1:PORT, e.g. URL("ws") for a LiveKit client, URL("http") for
// its Twirp API.
func (p *Proxy) URL(scheme string) string { return scheme + "://" + p.addr }

// Targets returns the addresses new connections are forwarded to, in order of preference.
func (p *Proxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.targets)
}

// LastTarget returns the target the most recent connection was forwarded to, or "".
func (p *Proxy) LastTarget() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Conns returns the number of client connections currently open through the proxy
// (including ones still waiting for their upstream dial or for Pause(false)).
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Accepted returns the number of client connections accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// CutAll aborts every current connection: both ends get a TCP RST (SO_LINGER 0), as when a
// middlebox or a node dies. New connections are still accepted.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	n := len(p.links)
	for l := range p.links {
		p.abortLocked(l)
	}
	p.mu.Unlock()
	p.logf("faultnet: %s: cut %d connection(s)", p.addr, n)
}

// Refuse(true) stops listening, so new connections fail with ECONNREFUSED; connections
// already open are left alone. Refuse(false) listens again on the same address. If the port
// cannot be had back (another socket took it meanwhile), the test is marked failed and the
// proxy keeps refusing.
func (p *Proxy) Refuse(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || refuse == p.refusing {
		return
	}
	if refuse {
		p.refusing = true
		_ = p.ln.Close()
		p.ln = nil
		p.logf("faultnet: %s: refusing new connections", p.addr)
		return
	}
	var (
		ln  net.Listener
		err error
	)
	deadline := time.Now().Add(relistenTimeout)
	for {
		if ln, err = net.Listen("tcp4", p.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Errorf("faultnet: Refuse(false): listen on %s again: %v", p.addr, err)
		return
	}
	p.refusing = false
	p.ln = ln
	p.wg.Add(1)
	go p.acceptLoop(ln)
	p.logf("faultnet: %s: accepting new connections again", p.addr)
}

// Pause(true) stops forwarding in both directions without closing anything: a black hole.
// Bytes already sent stay in socket buffers (at most one read chunk per direction is held
// by the proxy), clients that write see no error, readers see nothing, and a FIN or RST from
// either end is not passed on either. New connections are accepted by the kernel but not
// dialled upstream. Only a timeout notices. Pause(false) delivers everything held, as TCP
// does when a partition heals, and dials the connections that arrived meanwhile.
func (p *Proxy) Pause(pause bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || pause == p.paused {
		return
	}
	p.paused = pause
	if pause {
		p.gate = make(chan struct{})
		p.logf("faultnet: %s: paused (black hole)", p.addr)
	} else {
		close(p.gate)
		p.logf("faultnet: %s: forwarding again", p.addr)
	}
}

// Close stops listening, aborts every connection and waits for all of the proxy's
// goroutines. It is idempotent and registered with t.Cleanup by the constructors.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.cancel()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for l := range p.links {
		p.abortLocked(l)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) logf(format string, args ...any) {
	p.t.Helper()
	p.t.Logf(format, args...)
}

func (p *Proxy) acceptLoop(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient error (EMFILE, ECONNABORTED): back off briefly, unless closed.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			abortConn(c)
			return
		}
		p.accepted++
		ctx, cancel := context.WithCancel(p.ctx)
		l := &link{ctx: ctx, cancel: cancel, client: c}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		go p.serve(l)
		p.mu.Unlock()
	}
}

// serve dials the link's upstream and forwards until either side ends or the link is aborted.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
		l.cancel()
	}()

	if !p.waitGate(l) {
		return
	}
	server, target := p.dial(l)
	p.mu.Lock()
	if server == nil || l.aborted {
		p.abortLocked(l)
		p.mu.Unlock()
		if server != nil {
			abortConn(server)
		}
		return
	}
	l.server, l.target = server, target
	p.last = target
	p.mu.Unlock()

	var dirs sync.WaitGroup
	dirs.Add(2)
	go func() { defer dirs.Done(); p.pipe(l, server, l.client) }()
	go func() { defer dirs.Done(); p.pipe(l, l.client, server) }()
	dirs.Wait()
	_ = l.client.Close()
	_ = server.Close()
}

// dial returns a connection to the first target that accepts one, or nil.
func (p *Proxy) dial(l *link) (net.Conn, string) {
	d := net.Dialer{Timeout: dialTimeout}
	for _, target := range p.Targets() {
		c, err := d.DialContext(l.ctx, "tcp", target) // ends early on CutAll or Close
		if err == nil {
			return c, target
		}
		if l.ctx.Err() != nil {
			return nil, ""
		}
	}
	return nil, ""
}

// pipe copies src to dst, holding each chunk (and the end of the stream) while paused. An
// orderly EOF is passed on as a half-close; an error aborts the whole link.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	buf := make([]byte, bufSize)
	for {
		n, err := src.Read(buf)
		if !p.waitGate(l) {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				p.abort(l)
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
					return
				}
			}
			p.abort(l)
			return
		}
	}
}

// waitGate blocks while the proxy is paused; it reports false if the link was aborted or the
// proxy closed meanwhile.
func (p *Proxy) waitGate(l *link) bool {
	for {
		p.mu.Lock()
		gate, paused := p.gate, p.paused
		p.mu.Unlock()
		if !paused {
			return l.ctx.Err() == nil
		}
		select {
		case <-gate:
		case <-l.ctx.Done():
			return false
		}
	}
}

func (p *Proxy) abort(l *link) {
	p.mu.Lock()
	p.abortLocked(l)
	p.mu.Unlock()
}

// abortLocked resets both ends of l and forgets it. p.mu must be held.
func (p *Proxy) abortLocked(l *link) {
	delete(p.links, l)
	if l.aborted {
		return
	}
	l.aborted = true
	l.cancel()
	abortConn(l.client)
	if l.server != nil {
		abortConn(l.server)
	}
}

// abortConn closes c with SO_LINGER 0, so the peer gets an RST rather than a FIN.
func abortConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// LoadBalancer is a Proxy with several targets: each new connection goes to the first
// target, in order, that accepts a TCP connection (a killed livekit node refuses at once, so
// the next one is used). Connections already open stay on their target.
type LoadBalancer struct {
	*Proxy
}

// NewLoadBalancer listens on 127.0.0.1:0 in front of targets (host:port each). It fails the
// test if it cannot listen; t.Cleanup closes it.
func NewLoadBalancer(t testing.TB, targets ...string) *LoadBalancer {
	t.Helper()
	return &LoadBalancer{Proxy: newProxy(t, targets)}
}

// SetTargets replaces the targets for new connections; open connections are not moved.
func (b *LoadBalancer) SetTargets(targets ...string) {
	b.mu.Lock()
	b.targets = slices.Clone(targets)
	b.mu.Unlock()
	b.logf("faultnet: %s: targets %s", b.addr, strings.Join(targets, ", "))
}
