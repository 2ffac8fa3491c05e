//go:build linux

package netlab

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roombox/internal/testkit/lktest"
)

// LiveKit is a livekit-server running in the lab's server namespace.
//
// The embedded lktest.Server works as usual from the test process: its URL and HTTPURL
// (127.0.0.1:PORT in the host namespace) reach the server through a TCP forwarder netlab runs
// (host 127.0.0.1:PORT -> ServerIP:PORT in the server namespace), so lktest's readiness check
// and the RoomService helpers work unchanged. Media (ICE over UDP) exists only inside the lab.
// A device in the device namespace uses DeviceURL.
type LiveKit struct {
	*lktest.Server
	DeviceURL  string // ws://ServerIP:PORT, for clients in the device namespace
	DeviceHTTP string // http://ServerIP:PORT
}

// StartLiveKit starts livekit-server (lktest.Start) inside lab.ServerNS, listening on
// ServerIP only and advertising ServerIP as its ICE address. If relay is not nil, the relay
// is handed to clients in JoinResponse.ice_servers (rtc.turn_servers, protocol udp). opts are
// applied after netlab's settings, so a test may override them.
//
// It needs no change in lktest: the binary is replaced (lktest.WithBinary) by a script in the
// test's temp dir that execs `ip netns exec NS livekit-server "$@"` (same PID, so lktest's
// signals and Pdeathsig reach the server), and a config hook starts the forwarder for the
// HTTP port lktest chose.
func StartLiveKit(t testing.TB, lab *Lab, relay *TURN, opts ...lktest.Option) *LiveKit {
	t.Helper()
	bin, err := lktest.Binary()
	if err == nil {
		bin, err = filepath.Abs(bin) // the wrapper script runs in lktest's temp dir
	}
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	wrapper := filepath.Join(t.TempDir(), "livekit-server-in-"+lab.ServerNS)
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", shellQuote(lab.ServerNS), shellQuote(bin))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatalf("netlab: %v", err)
	}

	fwd := &forwarders{lab: lab}
	t.Cleanup(fwd.closeAll) // registered before lktest.Start's cleanup, so it runs after Stop

	all := []lktest.Option{
		lktest.WithBinary(wrapper),
		lktest.WithConfig(func(c *lktest.Config) {
			c.BindAddresses = []string{lab.ServerIP}
			c.RTC.NodeIP = lab.ServerIP
			c.RTC.EnableLoopbackCandidate = false
			c.RTC.IPs = lktest.IPsConfig{Includes: []string{lab.ServerIP + "/32"}}
			if relay != nil {
				if c.RTC.Extra == nil {
					c.RTC.Extra = map[string]any{}
				}
				c.RTC.Extra["turn_servers"] = []map[string]any{{
					"host": relay.Host, "port": relay.Port, "protocol": "udp",
					"username": relay.User, "credential": relay.Pass,
				}}
			}
		}),
	}
	all = append(all, opts...)
	// Last, so it sees the final port: forward host 127.0.0.1:PORT to the server namespace.
	// lktest runs hooks again with new ports when it retries; the forwarder follows.
	all = append(all, lktest.WithConfig(func(c *lktest.Config) {
		if err := fwd.forward(c.Port, net.JoinHostPort(bindHost(c, lab), strconv.Itoa(c.Port))); err != nil {
			t.Errorf("netlab: forwarder for port %d: %v", c.Port, err)
		}
	}))

	s := lktest.Start(t, all...)
	host := net.JoinHostPort(lab.ServerIP, strconv.Itoa(s.Config.Port))
	return &LiveKit{Server: s, DeviceURL: "ws://" + host, DeviceHTTP: "http://" + host}
}

func bindHost(c *lktest.Config, lab *Lab) string {
	if len(c.BindAddresses) > 0 && c.BindAddresses[0] != "" && c.BindAddresses[0] != "0.0.0.0" {
		return c.BindAddresses[0]
	}
	return lab.ServerIP
}

// forwarders relays TCP from 127.0.0.1:port in the host namespace to an address in the server
// namespace. Each accepted connection has two copy goroutines; closeAll stops everything and
// waits.
type forwarders struct {
	lab *Lab

	mu     sync.Mutex
	lns    map[int]net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (f *forwarders) forward(port int, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return net.ErrClosed
	}
	if _, ok := f.lns[port]; ok {
		return nil
	}
	// An earlier attempt's port is useless now.
	for p, ln := range f.lns {
		_ = ln.Close()
		delete(f.lns, p)
	}
	ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	if f.lns == nil {
		f.lns = map[int]net.Listener{}
		f.conns = map[net.Conn]struct{}{}
	}
	f.lns[port] = ln
	f.wg.Add(1)
	go f.accept(ln, target)
	return nil
}

func (f *forwarders) accept(ln net.Listener, target string) {
	defer f.wg.Done()
	dial := f.lab.DialContext(f.lab.ServerNS)
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed
		}
		if !f.track(c) {
			_ = c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			up, err := dial(ctx, "tcp4", target)
			cancel()
			if err != nil {
				return // the client sees the connection close, as if refused
			}
			if !f.track(up) {
				_ = up.Close()
				return
			}
			defer f.untrack(up)
			done := make(chan struct{})
			go func() {
				_, _ = io.Copy(up, c)
				closeWrite(up)
				close(done)
			}()
			_, _ = io.Copy(c, up)
			closeWrite(c)
			<-done
		}()
	}
}

func (f *forwarders) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarders) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	_ = c.Close()
}

func (f *forwarders) closeAll() {
	f.mu.Lock()
	f.closed = true
	for _, ln := range f.lns {
		_ = ln.Close()
	}
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
