package faultnet_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"roombox/internal/testkit/faultnet"
	"roombox/internal/testkit/testwait"
)

const (
	waitData    = 5 * time.Second        // bound for bytes that must arrive
	waitSilence = 300 * time.Millisecond // how long "nothing arrives" is watched
)

// greeter is a tiny loopback server: on accept it writes its name and a newline, then echoes.
type greeter struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	accepted int
	closed   bool
}

func startGreeter(t *testing.T, name string) *greeter {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &greeter{name: name, ln: ln, conns: make(map[net.Conn]struct{})}
	g.wg.Add(1)
	go g.acceptLoop()
	t.Cleanup(g.Close)
	return g
}

func (g *greeter) Addr() string { return g.ln.Addr().String() }

func (g *greeter) acceptLoop() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			c.Close()
			return
		}
		g.accepted++
		g.conns[c] = struct{}{}
		g.wg.Add(1)
		g.mu.Unlock()
		go func() {
			defer g.wg.Done()
			defer func() {
				g.mu.Lock()
				delete(g.conns, c)
				g.mu.Unlock()
				c.Close()
			}()
			if _, err := io.WriteString(c, g.name+"\n"); err != nil {
				return
			}
			_, _ = io.Copy(c, c)
		}()
	}
}

// Accepted is how many connections reached the server.
func (g *greeter) Accepted() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.accepted
}

// Open is how many connections the server has open.
func (g *greeter) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Close stops the server (its port then refuses) and closes its connections.
func (g *greeter) Close() {
	g.mu.Lock()
	g.closed = true
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.ln.Close()
	g.wg.Wait()
}

type client struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, waitData)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, Conn: c, r: bufio.NewReader(c)}
}

// line reads one line within d.
func (c *client) line(d time.Duration) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	s, err := c.r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func (c *client) mustLine(want string) {
	c.t.Helper()
	got, err := c.line(waitData)
	if err != nil || got != want {
		c.t.Fatalf("read line = %q, %v; want %q", got, err, want)
	}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c, s+"\n"); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// roundTrip sends s and expects it echoed.
func (c *client) roundTrip(s string) {
	c.t.Helper()
	c.send(s)
	c.mustLine(s)
}

// silent expects nothing to arrive for waitSilence.
func (c *client) silent() {
	c.t.Helper()
	got, err := c.line(waitSilence)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("read = %q, %v; want a timeout (nothing forwarded)", got, err)
	}
}

// broken expects the connection to be reset or closed within waitData.
func (c *client) broken() error {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitData))
	_, err := io.ReadAll(c.r)
	if err == nil {
		return io.EOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", waitData)
	}
	return err
}

func TestProxyForwards(t *testing.T) {
	g := startGreeter(t, "A")
	p := faultnet.NewProxy(t, g.Addr())
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") || p.URL("ws") != "ws://"+p.Addr() {
		t.Fatalf("Addr %q URL %q", p.Addr(), p.URL("ws"))
	}

	c := dial(t, p.Addr())
	c.mustLine("A")
	c.roundTrip("hello")
	big := strings.Repeat("x", 200<<10) // more than one read chunk
	c.roundTrip(big)
	if p.Conns() != 1 || p.Accepted() != 1 || p.LastTarget() != g.Addr() {
		t.Fatalf("Conns %d Accepted %d LastTarget %q", p.Conns(), p.Accepted(), p.LastTarget())
	}

	// A client's orderly close reaches the server and the proxy forgets the connection.
	c.Close()
	testwait.For(t, "proxy and server to drop the closed connection", waitData, func() bool {
		return p.Conns() == 0 && g.Open() == 0
	})
}

func TestProxyCutAll(t *testing.T) {
	g := startGreeter(t, "A")
	p := faultnet.NewProxy(t, g.Addr())

	c1, c2 := dial(t, p.Addr()), dial(t, p.Addr())
	c1.mustLine("A")
	c2.mustLine("A")
	if p.Conns() != 2 {
		t.Fatalf("Conns = %d, want 2", p.Conns())
	}

	p.CutAll()
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns after CutAll = %d", n)
	}
	for _, c := range []*client{c1, c2} {
		if err := c.broken(); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client read after CutAll: %v; want ECONNRESET", err)
		}
	}
	testwait.For(t, "the server to see both connections end", waitData, func() bool { return g.Open() == 0 })

	// New connections still work.
	c3 := dial(t, p.Addr())
	c3.mustLine("A")
	c3.roundTrip("again")
	if p.Accepted() != 3 || g.Accepted() != 3 {
		t.Fatalf("Accepted: proxy %d server %d; want 3", p.Accepted(), g.Accepted())
	}
}

func TestProxyRefuse(t *testing.T) {
	g := startGreeter(t, "A")
	p := faultnet.NewProxy(t, g.Addr())
	old := dial(t, p.Addr())
	old.mustLine("A")

	p.Refuse(true)
	p.Refuse(true) // idempotent
	if _, err := net.DialTimeout("tcp4", p.Addr(), waitData); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while refusing: %v; want ECONNREFUSED", err)
	}
	old.roundTrip("still here") // open connections are untouched

	p.Refuse(false)
	c := dial(t, p.Addr())
	c.mustLine("A")
	c.roundTrip("back")
	if p.Accepted() != 2 {
		t.Fatalf("Accepted = %d, want 2 (the refused dial never reached the proxy)", p.Accepted())
	}
}

func TestProxyPause(t *testing.T) {
	g := startGreeter(t, "A")
	p := faultnet.NewProxy(t, g.Addr())
	c := dial(t, p.Addr())
	c.mustLine("A")

	p.Pause(true)
	c.send("into the void") // the write succeeds: nothing is closed
	c.silent()

	// A connection made while paused is accepted but never reaches the server.
	late := dial(t, p.Addr())
	late.silent()
	if g.Accepted() != 1 {
		t.Fatalf("server accepted %d connections while paused; want 1", g.Accepted())
	}
	if p.Conns() != 2 || p.Accepted() != 2 {
		t.Fatalf("Conns %d Accepted %d; want 2, 2", p.Conns(), p.Accepted())
	}

	// Healing delivers what was held, in order, and the late connection is dialled.
	p.Pause(false)
	c.mustLine("into the void")
	c.roundTrip("after")
	late.mustLine("A")
	late.roundTrip("late")
}

func TestProxyPauseHoldsClose(t *testing.T) {
	g := startGreeter(t, "A")
	p := faultnet.NewProxy(t, g.Addr())
	c := dial(t, p.Addr())
	c.mustLine("A")

	// A client that gives up during a black hole: the server does not hear of it until the
	// network heals.
	p.Pause(true)
	c.Close()
	time.Sleep(waitSilence)
	if g.Open() != 1 {
		t.Fatalf("server open connections = %d while paused; want 1", g.Open())
	}
	p.Pause(false)
	testwait.For(t, "the server to see the close", waitData, func() bool { return g.Open() == 0 })
}

func TestProxyCloseWhilePaused(t *testing.T) {
	g := startGreeter(t, "A")
	p := faultnet.NewProxy(t, g.Addr())
	c := dial(t, p.Addr())
	c.mustLine("A")
	p.Pause(true)
	c.send(strings.Repeat("y", 1<<20)) // a chunk is held by the proxy, the rest in buffers
	late := dial(t, p.Addr())          // waiting for the gate before its dial

	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitData):
		t.Fatal("Close did not return")
	}
	p.Close() // idempotent
	if err := c.broken(); errors.Is(err, io.EOF) {
		t.Errorf("client after Close: %v; want a reset", err)
	}
	_ = late.broken()
	if _, err := net.DialTimeout("tcp4", p.Addr(), waitData); err == nil {
		t.Error("dial after Close succeeded")
	}
	testwait.For(t, "the server to see the reset", waitData, func() bool { return g.Open() == 0 })
}

func TestProxyDeadTarget(t *testing.T) {
	p := faultnet.NewProxy(t, deadAddr(t))
	mustFail(t, p.Addr())
	testwait.For(t, "the proxy to drop the connection", waitData, func() bool { return p.Conns() == 0 })
}

func TestLoadBalancer(t *testing.T) {
	a, b := startGreeter(t, "A"), startGreeter(t, "B")
	dead := deadAddr(t)
	lb := faultnet.NewLoadBalancer(t, dead, a.Addr(), b.Addr())

	ca := dial(t, lb.Addr())
	ca.mustLine("A") // the dead first target is skipped
	if lb.LastTarget() != a.Addr() {
		t.Fatalf("LastTarget = %q, want %q", lb.LastTarget(), a.Addr())
	}

	// The node behind A dies: its connection breaks, new ones go to B.
	a.Close()
	_ = ca.broken()
	cb := dial(t, lb.Addr())
	cb.mustLine("B")
	cb.roundTrip("on B")

	// Reordering affects new connections only.
	a2 := startGreeter(t, "A2")
	lb.SetTargets(a2.Addr(), b.Addr())
	if got := lb.Targets(); len(got) != 2 || got[0] != a2.Addr() {
		t.Fatalf("Targets = %v", got)
	}
	c2 := dial(t, lb.Addr())
	c2.mustLine("A2")
	cb.roundTrip("still on B")

	// No live target: the connection is accepted and reset.
	lb.SetTargets(dead)
	mustFail(t, lb.Addr())

	// The fault controls work on a balancer too.
	lb.SetTargets(b.Addr())
	lb.CutAll()
	_ = cb.broken()
	_ = c2.broken()
	if lb.Conns() != 0 {
		t.Fatalf("Conns after CutAll = %d", lb.Conns())
	}
	if lb.Accepted() != 4 {
		t.Fatalf("Accepted = %d, want 4", lb.Accepted())
	}
}

// mustFail connects to addr and expects the connection to be reset or closed at once (the
// reset may even beat connect's return on loopback).
func mustFail(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, waitData)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial %s: %v; want success or ECONNRESET", addr, err)
		}
		return
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitData))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection through %s stayed open: read %d, %v", addr, n, err)
	}
}

// deadAddr returns a loopback address where nothing listens (a port just released).
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
