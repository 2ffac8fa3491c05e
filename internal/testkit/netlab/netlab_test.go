//go:build linux

package netlab_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"github.com/pion/turn/v5"
	"google.golang.org/protobuf/proto"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/netlab"
)

// echo runs a UDP echo server on ip in namespace ns until the test ends; received counts the
// packets it got.
type echo struct {
	addr     *net.UDPAddr
	received atomic.Int64
	bytes    atomic.Int64
	first    atomic.Int64 // unix nanos of the first and last packet
	last     atomic.Int64
	reply    atomic.Bool
}

func startEcho(t *testing.T, lab *netlab.Lab, ns, ip string, reply bool) *echo {
	t.Helper()
	pc, err := lab.ListenPacket(ns, "udp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{addr: pc.LocalAddr().(*net.UDPAddr)}
	e.reply.Store(reply)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			now := time.Now().UnixNano()
			e.first.CompareAndSwap(0, now)
			e.last.Store(now)
			e.received.Add(1)
			e.bytes.Add(int64(n))
			if e.reply.Load() {
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); wg.Wait() })
	return e
}

func (e *echo) reset() {
	e.received.Store(0)
	e.bytes.Store(0)
	e.first.Store(0)
	e.last.Store(0)
}

// burst sends n numbered packets from pc to addr, 10 every 10 ms, and returns how many distinct
// ones came back (waiting at most 500 ms after the last send).
func burst(t *testing.T, pc net.PacketConn, to net.Addr, n int) int {
	t.Helper()
	got := make(map[uint32]bool, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pkt := make([]byte, 64)
		for i := range n {
			binary.BigEndian.PutUint32(pkt, uint32(i))
			_, _ = pc.WriteTo(pkt, to)
			if i%10 == 9 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	buf := make([]byte, 2048)
	var sendEnd time.Time
	hardStop := time.Now().Add(time.Duration(n)*time.Millisecond + 10*time.Second)
	for time.Now().Before(hardStop) {
		select {
		case <-done:
			if sendEnd.IsZero() {
				sendEnd = time.Now()
			}
		default:
		}
		if !sendEnd.IsZero() && time.Since(sendEnd) > 500*time.Millisecond {
			break
		}
		_ = pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		m, _, err := pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		if m >= 4 {
			got[binary.BigEndian.Uint32(buf)] = true
		}
	}
	<-done
	return len(got)
}

func TestLossAndRate(t *testing.T) {
	lab := netlab.New(t)
	t.Logf("lab: %s %s <-> %s %s", lab.DeviceNS, lab.DeviceIP, lab.ServerNS, lab.ServerIP)
	srv := startEcho(t, lab, lab.ServerNS, lab.ServerIP, true)
	dev, err := lab.ListenPacket(lab.DeviceNS, "udp4", net.JoinHostPort(lab.DeviceIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()

	const n = 500
	if got := burst(t, dev, srv.addr, n); got != n {
		t.Fatalf("no impairment: %d/%d echoed", got, n)
	}

	// 10 % on the device's egress: the server sees ~450 and echoes all of them.
	srv.reset()
	lab.Device.Loss(10)
	echoed := burst(t, dev, srv.addr, n)
	arrived := int(srv.received.Load())
	t.Logf("Device.Loss(10): server received %d/%d (%.1f %% lost), echoed back %d", arrived, n, 100*float64(n-arrived)/n, echoed)
	// Binomial(500, 0.1): mean 50, sd 6.7; accept 20..85 lost (> 4.5 sd).
	if lost := n - arrived; lost < 20 || lost > 85 {
		t.Errorf("Device.Loss(10) lost %d of %d, want about 50", lost, n)
	}
	if echoed != arrived {
		t.Errorf("server side unimpaired, but %d echoes for %d arrivals", echoed, arrived)
	}

	// Both sides: a round trip loses 1-0.9² = 19 %.
	srv.reset()
	lab.Server.Loss(10)
	echoed = burst(t, dev, srv.addr, n)
	t.Logf("Device.Loss(10)+Server.Loss(10): echoed %d/%d (%.1f %% round-trip loss)", echoed, n, 100*float64(n-echoed)/n)
	if lost := n - echoed; lost < 55 || lost > 140 {
		t.Errorf("round-trip loss %d of %d, want about 95", lost, n)
	}

	// UDP only: TCP gets through 100 % UDP loss.
	lab.Device.Loss(100)
	lab.Server.Loss(100)
	if got := burst(t, dev, srv.addr, 50); got != 0 {
		t.Errorf("Loss(100): %d UDP echoes got through", got)
	}
	tcpEcho(t, lab)

	lab.Clear()
	if got := burst(t, dev, srv.addr, n); got != n {
		t.Fatalf("after Clear: %d/%d echoed", got, n)
	}

	// Rate: blast ~4 Mbit/s for 1.5 s, measure what arrives.
	srv.reply.Store(false)
	unlimited := blast(t, dev, srv)
	lab.Device.Rate(1000)
	limited := blast(t, dev, srv)
	t.Logf("throughput device->server: %.0f kbit/s unlimited (sender paces ~4100), %.0f kbit/s with Device.Rate(1000)", unlimited, limited)
	// tbf counts Ethernet+IP+UDP headers (42 B per 1000 B payload): ~960 kbit/s of payload.
	if limited < 700 || limited > 1100 {
		t.Errorf("Rate(1000): measured %.0f kbit/s", limited)
	}
	if unlimited < 2500 {
		t.Errorf("unlimited throughput %.0f kbit/s, want the sender's ~4100", unlimited)
	}
	lab.Device.Clear()
	if got := blast(t, dev, srv); got < 2500 {
		t.Errorf("after Clear: %.0f kbit/s", got)
	}
}

// blast sends 150 × 5 packets of 1000 B, one group every 10 ms (~4.1 Mbit/s with headers),
// and returns the payload rate at the receiver between its first and last packet, in kbit/s.
func blast(t *testing.T, pc net.PacketConn, srv *echo) float64 {
	t.Helper()
	srv.reset()
	pkt := make([]byte, 1000)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for range 150 {
		for range 5 {
			_, _ = pc.WriteTo(pkt, srv.addr)
		}
		<-tick.C
	}
	// Drain: the tbf queue holds at most DefaultRateLatency.
	deadline := time.Now().Add(3 * time.Second)
	for prev := int64(-1); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		cur := srv.received.Load()
		if cur == prev {
			break
		}
		prev = cur
	}
	count, bytes := srv.received.Load(), srv.bytes.Load()
	span := time.Duration(srv.last.Load() - srv.first.Load())
	if count < 2 || span <= 0 {
		t.Fatalf("blast: %d packets arrived", count)
	}
	return float64(bytes-1000) * 8 / span.Seconds() / 1000
}

// tcpEcho checks a TCP round trip device -> server.
func tcpEcho(t *testing.T, lab *netlab.Lab) {
	t.Helper()
	ln, err := lab.Listen(lab.ServerNS, "tcp4", net.JoinHostPort(lab.ServerIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := lab.DialContext(lab.DeviceNS)(ctx, "tcp4", ln.Addr().String())
	if err != nil {
		t.Fatalf("tcp dial from device ns: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("tcp is not subject to Loss")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("tcp echo = %q, %v", got, err)
	}
}

func TestTURNDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	lab := netlab.New(t)
	relay := netlab.StartTURN(t, lab, delay)
	srv := startEcho(t, lab, lab.ServerNS, lab.ServerIP, true)

	// Direct round trip, for comparison.
	direct, err := lab.ListenPacket(lab.DeviceNS, "udp4", net.JoinHostPort(lab.DeviceIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	directRTT := pings(t, direct, srv.addr, 10)

	// Through the relay: a TURN client in the device namespace.
	conn, err := lab.ListenPacket(lab.DeviceNS, "udp4", net.JoinHostPort(lab.DeviceIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	server := net.JoinHostPort(relay.Host, itoa(relay.Port))
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server, TURNServerAddr: server,
		Username: relay.User, Password: relay.Pass, Realm: netlab.TURNRealm,
		Conn: conn,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close() // closes conn
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := client.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	t.Logf("relay %s, allocation at %s", relay.URL, relayed.LocalAddr())
	if got := relay.Allocations(); got != 1 {
		t.Errorf("Allocations = %d, want 1", got)
	}
	relayRTT := pings(t, relayed, srv.addr, 10)

	t.Logf("RTT direct: min %v median %v max %v", directRTT[0], directRTT[len(directRTT)/2], directRTT[len(directRTT)-1])
	t.Logf("RTT via TURN (delay %v each way): min %v median %v max %v", delay, relayRTT[0], relayRTT[len(relayRTT)/2], relayRTT[len(relayRTT)-1])
	if relayRTT[0] < 2*delay {
		t.Errorf("min RTT through the relay %v < 2×%v", relayRTT[0], delay)
	}
	if med := relayRTT[len(relayRTT)/2]; med > 2*delay+time.Second {
		t.Errorf("median RTT through the relay %v: far more than 2×%v", med, delay)
	}

	relay.SetDelay(10 * time.Millisecond)
	shorter := pings(t, relayed, srv.addr, 5)
	t.Logf("after SetDelay(10ms): min RTT %v", shorter[0])
	if shorter[0] < 20*time.Millisecond || shorter[0] >= 2*delay {
		t.Errorf("after SetDelay(10ms): min RTT %v, want 20ms..%v", shorter[0], 2*delay)
	}
	n, dropped := relay.Stats()
	t.Logf("relay stats: %d packets relayed, %d dropped", n, dropped)
}

// pings sends count packets one at a time and returns the sorted round-trip times.
func pings(t *testing.T, pc net.PacketConn, to net.Addr, count int) []time.Duration {
	t.Helper()
	var rtts []time.Duration
	buf := make([]byte, 1500)
	for i := range count {
		msg := []byte("ping " + itoa(i))
		start := time.Now()
		if _, err := pc.WriteTo(msg, to); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		for {
			_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("ping %d: %v", i, err)
			}
			if string(buf[:n]) == string(msg) {
				break
			}
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	return rtts
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLiveKitInServerNamespace(t *testing.T) {
	lab := netlab.New(t)
	relay := netlab.StartTURN(t, lab, 40*time.Millisecond)
	lk := netlab.StartLiveKit(t, lab, relay)
	t.Logf("livekit-server pid %d in %s: device URL %s, host URL %s (forwarded)", lk.PID(), lab.ServerNS, lk.DeviceURL, lk.URL)

	// The process really is in the server namespace.
	nsOf := func(pid string) string {
		l, err := os.Readlink("/proc/" + pid + "/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if got, self := nsOf(itoa(lk.PID())), nsOf("self"); got == self {
		t.Errorf("livekit-server runs in the test's namespace %s", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// From the host, through the forwarder: the RoomService helpers work.
	if _, err := lk.ListRooms(ctx); err != nil {
		t.Fatalf("ListRooms via forwarder: %v", err)
	}

	// From the device namespace: HTTP answers on ServerIP.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: lab.DialContext(lab.DeviceNS)}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(lk.DeviceHTTP + "/")
	if err != nil {
		t.Fatalf("GET %s/ from %s: %v", lk.DeviceHTTP, lab.DeviceNS, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "OK" {
		t.Fatalf("GET %s/ from %s = %d %q", lk.DeviceHTTP, lab.DeviceNS, resp.StatusCode, body)
	}
	t.Logf("GET %s/ from %s: %d %q", lk.DeviceHTTP, lab.DeviceNS, resp.StatusCode, strings.TrimSpace(string(body)))

	// UDP impairments leave signaling alone.
	lab.Device.Loss(100)
	lab.Device.Rate(500)

	// Join over the signal WebSocket from the device namespace: the JoinResponse hands out
	// the relay.
	join := signalJoin(ctx, t, lab, lk, "room1", "box")
	var urls []string
	for _, is := range join.GetIceServers() {
		urls = append(urls, is.GetUrls()...)
		if slices.Contains(is.GetUrls(), relay.URL) && (is.GetUsername() != relay.User || is.GetCredential() != relay.Pass) {
			t.Errorf("ice server %v: credentials %q/%q", is.GetUrls(), is.GetUsername(), is.GetCredential())
		}
	}
	t.Logf("JoinResponse ice_servers %v, client_configuration.force_relay %v", urls, join.GetClientConfiguration().GetForceRelay())
	if !slices.Contains(urls, relay.URL) {
		t.Errorf("JoinResponse ice_servers %v lack %s", urls, relay.URL)
	}
	lab.Clear()
}

// signalJoin opens /rtc from the device namespace and returns the JoinResponse.
func signalJoin(ctx context.Context, t *testing.T, lab *netlab.Lab, lk *netlab.LiveKit, room, identity string) *livekit.JoinResponse {
	t.Helper()
	q := url.Values{}
	q.Set("access_token", lktest.Token(t, room, identity))
	q.Set("protocol", "16")
	q.Set("sdk", "go")
	q.Set("auto_subscribe", "0")
	d := websocket.Dialer{NetDialContext: lab.DialContext(lab.DeviceNS), HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.DialContext(ctx, lk.DeviceURL+"/rtc?"+q.Encode(), nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("signal dial from %s: %v %s", lab.DeviceNS, err, status)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for range 10 {
		typ, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("signal read: %v", err)
		}
		if typ != websocket.BinaryMessage {
			continue
		}
		var res livekit.SignalResponse
		if err := proto.Unmarshal(msg, &res); err != nil {
			t.Fatalf("signal message: %v", err)
		}
		if j := res.GetJoin(); j != nil {
			return j
		}
	}
	t.Fatal(errors.New("no JoinResponse in the first 10 messages"))
	return nil
}
