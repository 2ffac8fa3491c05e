//go:build linux

package netlab_test

// TestDeviceInImpairedNetwork needs root (it creates network namespaces with `ip netns`, and
// nftables / tc rules inside them), iproute2 and nftables, plus the livekit-server and roombox
// binaries. Without root netlab.New fails the test and says what is missing. Run it with
//
//	ROOMBOX_LIVEKIT_SERVER=$PWD/bin/livekit-server ROOMBOX_BIN=$PWD/bin/roombox \
//	    go test ./internal/testkit/netlab/ -run TestDeviceInImpairedNetwork -v -count=1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/netlab"
	"roombox/internal/testkit/roomboxtest"
)

// The impairment of issue "room client recovery", item 5.
const (
	// impairedRelayDelay is held by the relay in each direction. "200 ms added delay" is read
	// as 200 ms added to the round trip (100 ms each way), the figure a user notices and what
	// `tc netem delay 200ms` on one end of a path adds; the device's media must cross the relay
	// both ways, so every RTCP / ICE / DTLS round trip is 200 ms longer than the direct path.
	impairedRelayDelay = 100 * time.Millisecond
	impairedLoss       = 10   // % of UDP leaving either side, independently (numgen random)
	impairedRateKbit   = 1000 // tbf on the device's egress (all protocols)

	impairedRoom     = "impaired"
	impairedIdentity = "box"

	impairedJoinBudget = 90 * time.Second       // first join under impairment, bounded
	impairedObserve    = 30 * time.Second       // observation after the first join
	impairedSample     = 500 * time.Millisecond // status and server poll period
	impairedInRoomMin  = 0.90                   // "stays in the room": in-room share after the first join
)

// boxStatus is the part of `roombox status` this test reads (device.Status's JSON); decoded
// locally so the test does not depend on the device package's Go types.
type boxStatus struct {
	State     string `json:"state"`
	Attempt   int    `json:"attempt"`
	LastError string `json:"last_error"`
	Joins     int    `json:"joins"`
	Resumes   int    `json:"resumes"`
}

// impairedSampleRec is one poll of the device and of the server.
type impairedSampleRec struct {
	at     time.Duration // since the daemon started
	st     boxStatus
	stErr  error // status CLI failed (daemon not answering)
	onSrv  bool  // the server lists the participant
	sid    string
	cam    bool // camera track published
	mic    bool // microphone track published
	layers []*livekit.VideoLayer
	srvErr error // other than not found
}

func (s impairedSampleRec) inRoom() bool { return s.stErr == nil && s.st.State == "in-room" }

// TestDeviceInImpairedNetwork runs the real roombox daemon in the device namespace against
// livekit-server in the server namespace, with the device forced onto a TURN relay that adds
// impairedRelayDelay each way, 10 % random UDP loss on both sides' egress, and a 1 Mbit/s
// token bucket on the device's egress. The device must join, publish camera and microphone,
// and stay in the room (one join, in-room at the end and for at least 90 % of the samples
// after its first join). Resumes, TURN counters and the server's view of the media are
// reported, not asserted.
func TestDeviceInImpairedNetwork(t *testing.T) {
	bin := roomboxtest.Binary(t)
	lab := netlab.New(t)
	relay := netlab.StartTURN(t, lab, impairedRelayDelay)

	// livekit-server's Prometheus endpoint, on ServerIP in the server namespace, gives the
	// server's measured incoming media rate (RoomService only has the publisher's declared
	// layer bitrates). The namespace is fresh, so a port free there now stays free.
	promPort := freeTCPPort(t, lab)
	lk := netlab.StartLiveKit(t, lab, relay, lktest.WithConfig(func(c *lktest.Config) {
		if c.Extra == nil {
			c.Extra = map[string]any{}
		}
		c.Extra["prometheus"] = map[string]any{"port": promPort}
	}))
	prom := &promScraper{
		url:    "http://" + net.JoinHostPort(lab.ServerIP, strconv.Itoa(promPort)) + "/metrics",
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: lab.DialContext(lab.ServerNS)}},
	}
	defer prom.client.CloseIdleConnections()

	// The relay is the device's only UDP path; then the impairments.
	lab.Device.Block(relay.Port)
	lab.Device.Loss(impairedLoss)
	lab.Server.Loss(impairedLoss)
	lab.Device.Rate(impairedRateKbit)
	t.Logf("impairment: relay %v each way (+%v RTT), UDP loss %d %% each way (~%d %% round trip), device egress %d kbit/s (tbf, %v queue), UDP only via TURN port %d",
		impairedRelayDelay, 2*impairedRelayDelay, impairedLoss, 100-(100-impairedLoss)*(100-impairedLoss)/100, impairedRateKbit, netlab.DefaultRateLatency, relay.Port)

	// Provision (the daemon is not running yet: the CLI writes the state dir), then run it.
	tok, err := lktest.MintToken(impairedRoom, impairedIdentity)
	if err != nil {
		t.Fatalf("mint token: %v", err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	d := startRoombox(pctx, t, lab, bin, lk.DeviceURL, tok, logDigest)
	pcancel()
	state, started := d.StateDir, d.Started

	poll := func() impairedSampleRec {
		s := impairedSampleRec{at: time.Since(started)}
		s.st, s.stErr = statusOf(bin, state)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		p, err := lk.GetParticipant(ctx, impairedRoom, impairedIdentity)
		var te twirp.Error
		switch {
		case err == nil:
			s.onSrv, s.sid = true, p.GetSid()
			s.cam = lktest.TrackBySource(p, livekit.TrackSource_CAMERA) != nil
			s.mic = lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE) != nil
			if cam := lktest.TrackBySource(p, livekit.TrackSource_CAMERA); cam != nil {
				s.layers = cam.GetLayers()
			}
		case errors.As(err, &te) && te.Code() == twirp.NotFound:
		default:
			s.srvErr = err
		}
		return s
	}
	daemonGone := func() error {
		if gone, err := d.Exited(); gone {
			return fmt.Errorf("roombox run exited: %v", err)
		}
		return nil
	}

	// Phase 1: until the device is in the room and the server lists both tracks (bounded).
	var samples []impairedSampleRec
	tick := time.NewTicker(impairedSample)
	defer tick.Stop()
	firstIn, firstTracks := -1, -1
	for deadline := started.Add(impairedJoinBudget); time.Now().Before(deadline) && (firstIn < 0 || firstTracks < 0); <-tick.C {
		if err := daemonGone(); err != nil {
			t.Fatal(err)
		}
		s := poll()
		samples = append(samples, s)
		if firstIn < 0 && s.inRoom() {
			firstIn = len(samples) - 1
		}
		if firstTracks < 0 && s.cam && s.mic {
			firstTracks = len(samples) - 1
		}
	}
	if firstIn < 0 {
		reportTransitions(t, samples)
		t.Fatalf("the device was not in the room within %v under impairment (last status %+v, status error %v)",
			impairedJoinBudget, samples[len(samples)-1].st, samples[len(samples)-1].stErr)
	}
	t.Logf("first in-room %v after the daemon started (sampled every %v; the daemon's log says %s)",
		samples[firstIn].at.Round(time.Millisecond), impairedSample, firstInRoomLogged(d.LogText(), started))
	if firstTracks >= 0 {
		t.Logf("server lists camera + microphone %v after the daemon started", samples[firstTracks].at.Round(time.Millisecond))
	}

	// Phase 2: observe for impairedObserve, counting what crosses the relay and the server.
	relayed0, dropped0 := relay.Stats()
	prom0, promErr0 := prom.scrape()
	tbf0, tbfErr0 := tbfStats(lab.DeviceNS)
	obsStart := time.Now()
	for deadline := obsStart.Add(impairedObserve); time.Now().Before(deadline); <-tick.C {
		if err := daemonGone(); err != nil {
			reportTransitions(t, samples)
			t.Fatal(err)
		}
		samples = append(samples, poll())
	}
	obsDur := time.Since(obsStart)
	relayed1, dropped1 := relay.Stats()
	prom1, promErr1 := prom.scrape()
	tbf1, tbfErr1 := tbfStats(lab.DeviceNS)
	if err := daemonGone(); err != nil {
		t.Fatal(err)
	}

	// Figures.
	after := samples[firstIn:]
	inRoom, onSrv, bothTracks, statusErrs, srvErrs := 0, 0, 0, 0, 0
	maxJoins, maxResumes, maxAttempt := 0, 0, 0
	var sids, lastErrors []string
	for _, s := range after {
		if s.inRoom() {
			inRoom++
		}
		if s.stErr != nil {
			statusErrs++
		}
		if s.srvErr != nil {
			srvErrs++
		}
		if s.onSrv {
			onSrv++
			if !slices.Contains(sids, s.sid) {
				sids = append(sids, s.sid)
			}
		}
		if s.cam && s.mic {
			bothTracks++
		}
		maxJoins = max(maxJoins, s.st.Joins)
		maxResumes = max(maxResumes, s.st.Resumes)
		maxAttempt = max(maxAttempt, s.st.Attempt)
		if s.st.LastError != "" && !slices.Contains(lastErrors, s.st.LastError) {
			lastErrors = append(lastErrors, s.st.LastError)
		}
	}
	last := samples[len(samples)-1]
	frac := float64(inRoom) / float64(len(after))
	reportTransitions(t, samples)
	t.Logf("after the first join: %d samples over %v; device in-room %d (%.1f %%), status unanswered %d; server lists it %d (%.1f %%), with camera+mic %d (%.1f %%), server errors %d, participant SIDs %v",
		len(after), (last.at - after[0].at).Round(time.Millisecond), inRoom, 100*frac, statusErrs,
		onSrv, 100*float64(onSrv)/float64(len(after)), bothTracks, 100*float64(bothTracks)/float64(len(after)), srvErrs, sids)
	t.Logf("device counters: joins %d (max seen %d), resumes %d (max seen %d), attempt max %d, last errors seen %q",
		last.st.Joins, maxJoins, last.st.Resumes, maxResumes, maxAttempt, lastErrors)
	t.Logf("TURN relay over %v: %d packets relayed (%.0f pkt/s, both directions), %d dropped by full delay queues (total since start: %d relayed, %d dropped), %d allocations now",
		obsDur.Round(time.Millisecond), relayed1-relayed0, float64(relayed1-relayed0)/obsDur.Seconds(), dropped1-dropped0, relayed1, dropped1, relay.Allocations())
	if tbfErr0 == nil && tbfErr1 == nil {
		sent, dropped := tbf1.packets-tbf0.packets, tbf1.dropped-tbf0.dropped
		t.Logf("device egress tbf over the observation: %.0f kbit/s sent (all protocols, with headers), %d packets sent, %d dropped because the queue held over %v (%.1f %% of the offered packets); since start %d sent, %d dropped",
			float64(tbf1.bytes-tbf0.bytes)*8/obsDur.Seconds()/1000, sent, dropped, netlab.DefaultRateLatency,
			100*float64(dropped)/float64(max(sent+dropped, 1)), tbf1.packets, tbf1.dropped)
	} else {
		t.Logf("tbf stats unavailable: %v %v", tbfErr0, tbfErr1)
	}
	for _, l := range last.layers {
		t.Logf("server: camera layer %s %dx%d declared bitrate %d kbit/s", l.GetQuality(), l.GetWidth(), l.GetHeight(), l.GetBitrate()/1000)
	}
	if promErr0 == nil && promErr1 == nil {
		secs := obsDur.Seconds()
		t.Logf("server measured (Prometheus, all incoming media of the only publisher): %.0f kbit/s, %.0f pkt/s; packets lost upstream: camera %.0f, microphone %.0f; NACKs %.0f, PLIs %.0f",
			(prom1.inBytes-prom0.inBytes)*8/secs/1000, (prom1.inPackets-prom0.inPackets)/secs,
			prom1.lost["CAMERA"]-prom0.lost["CAMERA"], prom1.lost["MICROPHONE"]-prom0.lost["MICROPHONE"],
			prom1.nacks-prom0.nacks, prom1.plis-prom0.plis)
	} else {
		t.Logf("server Prometheus metrics unavailable: %v %v", promErr0, promErr1)
	}

	// Assertions: joined, published, stayed.
	if firstTracks < 0 {
		t.Errorf("the server never listed the device with camera and microphone tracks")
	}
	if !last.inRoom() {
		t.Errorf("device not in the room at the end of the observation: %+v (status error %v)", last.st, last.stErr)
	}
	if !(last.cam && last.mic) {
		t.Errorf("at the end the server lists the device: %v, camera %v, microphone %v (error %v)", last.onSrv, last.cam, last.mic, last.srvErr)
	}
	if frac < impairedInRoomMin {
		t.Errorf("device in-room for %.1f %% of the samples after its first join, want >= %.0f %%", 100*frac, 100*impairedInRoomMin)
	}
	if last.st.Joins != 1 || maxJoins != 1 {
		t.Errorf("joins = %d (max seen %d), want 1: the device left and rejoined the room instead of staying", last.st.Joins, maxJoins)
	}
	if relay.Allocations() == 0 || relayed1 == relayed0 {
		t.Errorf("media did not cross the relay: %d allocations, %d packets relayed during the observation", relay.Allocations(), relayed1-relayed0)
	}
}

// statusOf runs `roombox status` from the test's namespace (5 s at most): the LocalAPI is a
// unix socket file in the state dir, reachable from any network namespace.
func statusOf(bin, state string) (boxStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st boxStatus
	err := roomboxtest.DecodeStatus(ctx, bin, state, &st)
	return st, err
}

// reportTransitions logs each change of the device's state (and of the server's view of it)
// with the sample time.
func reportTransitions(t *testing.T, samples []impairedSampleRec) {
	t.Helper()
	var b strings.Builder
	prev := ""
	for _, s := range samples {
		dev := s.st.State
		if s.stErr != nil {
			dev = "unanswered(" + s.stErr.Error() + ")"
		}
		srv := "absent"
		switch {
		case s.srvErr != nil:
			srv = "error(" + s.srvErr.Error() + ")"
		case s.onSrv:
			srv = fmt.Sprintf("present sid=%s camera=%v mic=%v", s.sid, s.cam, s.mic)
		}
		cur := fmt.Sprintf("device %s joins=%d resumes=%d attempt=%d err=%q | server %s",
			dev, s.st.Joins, s.st.Resumes, s.st.Attempt, s.st.LastError, srv)
		if cur != prev {
			fmt.Fprintf(&b, "  %8v  %s\n", s.at.Round(time.Millisecond), cur)
			prev = cur
		}
	}
	t.Logf("%d samples; changes:\n%s", len(samples), b.String())
}

// logDigest keeps the daemon's state changes, warnings and errors.
func logDigest(log string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "msg=\"state ") || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") ||
			strings.Contains(line, "resum") || strings.Contains(line, "rejoin") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// firstInRoomLogged returns how long after start the daemon logged its first "-> in-room".
func firstInRoomLogged(log string, start time.Time) string {
	for line := range strings.Lines(log) {
		if !strings.Contains(line, "-> in-room\"") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return "in-room at " + ts
		}
		return at.Sub(start).Round(time.Millisecond).String()
	}
	return "no in-room yet"
}

var tbfRe = regexp.MustCompile(`Sent (\d+) bytes (\d+) pkt \(dropped (\d+),`)

type tbfCounters struct{ bytes, packets, dropped int64 }

// tbfStats reads the root qdisc's counters on the lab link in namespace ns.
func tbfStats(ns string) (tbfCounters, error) {
	var c tbfCounters
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tc", "-n", ns, "-s", "qdisc", "show", "dev", netlab.Link).CombinedOutput()
	if err != nil {
		return c, fmt.Errorf("tc -s qdisc: %v: %s", err, out)
	}
	m := tbfRe.FindStringSubmatch(string(out))
	if m == nil || !strings.Contains(string(out), "qdisc tbf") {
		return c, fmt.Errorf("no tbf counters in %q", out)
	}
	c.bytes, _ = strconv.ParseInt(m[1], 10, 64)
	c.packets, _ = strconv.ParseInt(m[2], 10, 64)
	c.dropped, _ = strconv.ParseInt(m[3], 10, 64)
	return c, nil
}

// freeTCPPort returns a TCP port free on ServerIP in the server namespace.
func freeTCPPort(t *testing.T, lab *netlab.Lab) int {
	t.Helper()
	ln, err := lab.Listen(lab.ServerNS, "tcp4", net.JoinHostPort(lab.ServerIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// promScraper reads livekit-server's Prometheus counters.
type promScraper struct {
	url    string
	client *http.Client
}

type promFigures struct {
	inBytes, inPackets float64            // livekit_packet_bytes / _total, direction incoming
	lost               map[string]float64 // livekit_packet_loss_total incoming, by source
	nacks, plis        float64            // livekit_nack_total / livekit_pli_total, all directions
}

func (p *promScraper) scrape() (promFigures, error) {
	f := promFigures{lost: map[string]float64{}}
	resp, err := p.client.Get(p.url)
	if err != nil {
		return f, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return f, fmt.Errorf("GET %s: %s", p.url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:sp], "{")
		incoming := strings.Contains(labels, `direction="incoming"`)
		switch name {
		case "livekit_packet_bytes":
			if incoming {
				f.inBytes += v
			}
		case "livekit_packet_total":
			if incoming {
				f.inPackets += v
			}
		case "livekit_packet_loss_total":
			if incoming {
				for _, src := range []string{"CAMERA", "MICROPHONE"} {
					if strings.Contains(labels, `source="`+src+`"`) {
						f.lost[src] += v
					}
				}
			}
		case "livekit_nack_total":
			f.nacks += v
		case "livekit_pli_total":
			f.plis += v
		}
	}
	return f, sc.Err()
}
