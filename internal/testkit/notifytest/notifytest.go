// Package notifytest is systemd's side of the notify protocol (sd_notify(3)) for tests: a
// unixgram socket to name in NOTIFY_SOCKET, and the messages a daemon sends to it. Standard
// library only.
package notifytest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Socket is a notify socket the test owns; its cleanup closes it.
type Socket struct {
	Path string // for NOTIFY_SOCKET
	msgs chan string
}

// Listen binds a notify socket and starts reading it.
func Listen(t testing.TB) *Socket {
	t.Helper()
	// Not t.TempDir: its path can exceed a socket address's 108 bytes.
	dir, err := os.MkdirTemp("", "notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Socket{Path: filepath.Join(dir, "sock"), msgs: make(chan string, 1024)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		defer close(s.msgs)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.msgs <- string(buf[:n])
		}
	}()
	return s
}

// Await reads messages until one equal to want (or, with a trailing "*", starting with it),
// failing the test after d, and returns the messages read before it.
func (s *Socket) Await(t testing.TB, want string, d time.Duration) []string {
	t.Helper()
	var before []string
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatalf("notify socket closed waiting for %q; read %q", want, before)
			}
			if m == want || strings.HasSuffix(want, "*") && strings.HasPrefix(m, strings.TrimSuffix(want, "*")) {
				return before
			}
			before = append(before, m)
		case <-timeout:
			t.Fatalf("no %q within %v; read %q", want, d, before)
		}
	}
}

// Collect returns every message that arrives within d.
func (s *Socket) Collect(d time.Duration) []string {
	var got []string
	timeout := time.After(d)
	for {
		select {
		case m := <-s.msgs:
			got = append(got, m)
		case <-timeout:
			return got
		}
	}
}

// Count is how many of msgs are want.
func Count(msgs []string, want string) int {
	n := 0
	for _, m := range msgs {
		if m == want {
			n++
		}
	}
	return n
}
