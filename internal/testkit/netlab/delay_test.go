package netlab

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestDelayConn checks on loopback that a DelayConn holds packets both ways, keeps order,
// honours read deadlines without losing the held packet, and stops its goroutines on Close.
func TestDelayConn(t *testing.T) {
	const delay = 30 * time.Millisecond
	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dc := NewDelayConn(raw, delay)
	defer dc.Close()

	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	// Outbound: dc -> peer.
	const n = 20
	start := time.Now()
	for i := range n {
		if _, err := dc.WriteTo([]byte{byte(i)}, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		m, _, err := peer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("peer read %d: %v", i, err)
		}
		if i == 0 {
			if got := time.Since(start); got < delay {
				t.Errorf("first packet after %v, want >= %v", got, delay)
			}
		}
		if m != 1 || buf[0] != byte(i) {
			t.Fatalf("packet %d = %v, want [%d] (order)", i, buf[:m], i)
		}
	}

	// Inbound: peer -> dc, with a read deadline shorter than the delay first.
	sent := time.Now()
	if _, err := peer.WriteTo([]byte("x"), dc.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = dc.SetReadDeadline(time.Now().Add(delay / 3))
	if _, _, err := dc.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom before the delay = %v, want deadline exceeded", err)
	}
	_ = dc.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, from, err := dc.ReadFrom(buf)
	if err != nil || string(buf[:m]) != "x" || from.String() != peer.LocalAddr().String() {
		t.Fatalf("ReadFrom = %q from %v, %v", buf[:m], from, err)
	}
	if got := time.Since(sent); got < delay {
		t.Errorf("inbound packet after %v, want >= %v", got, delay)
	}

	// Close unblocks a pending ReadFrom.
	_ = dc.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, _, err := dc.ReadFrom(buf)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := dc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrom after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFrom still blocked 5 s after Close")
	}
	if relayed, dropped := dc.Stats(); relayed != n+1 || dropped != 0 {
		t.Errorf("Stats = %d relayed, %d dropped; want %d, 0", relayed, dropped, n+1)
	}
}
