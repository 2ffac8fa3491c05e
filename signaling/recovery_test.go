package signaling_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/hal/sim"
	"roombox/internal/testkit/faultnet"
	"roombox/internal/testkit/lktest"
	"roombox/media"
	"roombox/signaling"
)

// These tests run the room client against the real livekit-server; faults go through a
// TCP proxy the test owns (the signal WebSocket) or kill the server.

const testRoom = "recovery"

// box is a Room publishing a real microphone pipeline (sim tone -> Opus).
type box struct {
	room         *signaling.Room
	audio        *media.Audio
	events       chan signaling.Event
	remoteTracks atomic.Int32 // remote tracks received (and drained)
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

func startBox(t testing.TB, url string, tokens signaling.TokenSource, muted bool) *box {
	t.Helper()
	board, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	track := signaling.NewAudioTrack("microphone", "box")
	enc, err := media.NewOpusEncoder(32_000)
	if err != nil {
		t.Fatal(err)
	}
	audio, err := media.NewAudio(board.Mic, enc, track)
	if err != nil {
		t.Fatal(err)
	}
	audio.SetMuted(muted)
	b := &box{audio: audio, events: make(chan signaling.Event, 256)}
	b.room = signaling.NewRoom(signaling.RoomOptions{
		URL: url, Tokens: tokens, SubscribeAudio: true,
		OnEvent: func(e signaling.Event) {
			select {
			case b.events <- e:
			default:
			}
		},
		OnTrack: func(rt *signaling.RemoteTrack) {
			b.remoteTracks.Add(1)
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				for {
					if _, _, err := rt.Track.ReadRTP(); err != nil {
						return
					}
				}
			}()
		},
		Backoff: func(int) time.Duration { return 200 * time.Millisecond },
	})
	b.room.SetTracks(signaling.Track{LocalTrack: signaling.LocalTrack{
		Track: track, Source: signaling.SourceMicrophone, Name: "microphone", Muted: muted,
	}})
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.wg.Add(2)
	go func() { defer b.wg.Done(); _ = audio.Run(ctx) }()
	go func() { defer b.wg.Done(); _ = b.room.Run(ctx) }()
	t.Cleanup(b.stop)
	return b
}

// stop cancels the room and the pipeline; it must return promptly in any phase.
func (b *box) stop() {
	b.cancel()
	b.wg.Wait()
}

// waitEvent waits for the first event of type T.
func waitEvent[T signaling.Event](t testing.TB, b *box, d time.Duration) (T, time.Time) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-b.events:
			if v, ok := e.(T); ok {
				return v, time.Now()
			}
		case <-deadline:
			var zero T
			t.Fatalf("no %T within %v", zero, d)
			return zero, time.Time{}
		}
	}
}

// watcher is a second participant counting the audio packets it receives.
type watcher struct {
	sess    *signaling.Session
	packets atomic.Int64
	wg      sync.WaitGroup
}

func startWatcher(t testing.TB, srv *lktest.Server) *watcher {
	t.Helper()
	w := &watcher{}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sess, err := signaling.Connect(ctx, srv.URL, lktest.Token(t, testRoom, "watcher"), signaling.Options{
		AutoSubscribe: true,
		OnTrack: func(rt *signaling.RemoteTrack) {
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				for {
					if _, _, err := rt.Track.ReadRTP(); err != nil {
						return
					}
					w.packets.Add(1)
				}
			}()
		},
	})
	if err != nil {
		t.Fatalf("watcher: %v", err)
	}
	w.sess = sess
	t.Cleanup(func() { _ = sess.Close(); w.wg.Wait() })
	return w
}

// flowing waits until more packets arrive than had arrived when it was called.
func (w *watcher) flowing(t testing.TB, what string) {
	t.Helper()
	from := w.packets.Load()
	deadline := time.Now().Add(10 * time.Second)
	for w.packets.Load() < from+25 { // half a second of 20 ms packets
		if time.Now().After(deadline) {
			t.Fatalf("media not flowing %s (%d packets, then no more)", what, from)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// participants lists the identities the server has in the room.
func participants(t *testing.T, srv *lktest.Server) []string {
	t.Helper()
	ps, err := srv.ListParticipants(context.Background(), testRoom)
	if err != nil {
		t.Fatalf("ListParticipants: %v", err)
	}
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.Identity)
	}
	return ids
}

// noLeak fails the test if goroutines started during it are still running once it is done.
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("%d goroutines left over (had %d before):\n%s", runtime.NumGoroutine(), before, buf[:n])
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// proxiedBox is a server, a box whose signal connection runs through a proxy the test
// owns, and a watcher receiving the box's audio once it flows (the server resumes only a
// participant whose media connected).
func proxiedBox(t testing.TB) (*lktest.Server, *faultnet.Proxy, *watcher, *box) {
	t.Helper()
	srv := lktest.Start(t)
	proxy := faultnet.NewProxy(t, strings.TrimPrefix(srv.URL, "ws://"))
	w := startWatcher(t, srv)
	b := startBox(t, proxy.URL("ws"), signaling.StaticToken(lktest.Token(t, testRoom, "box")), false)
	waitEvent[signaling.Joined](t, b, 15*time.Second)
	w.flowing(t, "after join")
	return srv, proxy, w, b
}

func TestResumeAfterSignalCut(t *testing.T) {
	noLeak(t)
	srv, proxy, w, b := proxiedBox(t)
	proxy.CutAll()
	cut := time.Now()
	ev, at := waitEvent[signaling.Reconnected](t, b, 15*time.Second)
	if !ev.Resumed {
		t.Fatal("reconnected by a full rejoin, want a resume")
	}
	t.Logf("resume: signal cut -> resumed in %v", at.Sub(cut).Round(time.Millisecond))
	w.flowing(t, "after the resume")
	st := b.room.State()
	if st.Joins != 1 || st.Resumes != 1 || !st.Connected {
		t.Fatalf("state after resume: joins %d resumes %d connected %v; want 1, 1, true", st.Joins, st.Resumes, st.Connected)
	}
	if ids := participants(t, srv); len(ids) != 2 {
		t.Fatalf("participants %v, want exactly the box and the watcher", ids)
	}

	// Per-track stats keep counting on the resumed session.
	b.room.Stats()
	time.Sleep(time.Second)
	stats := b.room.Stats()
	if len(stats) != 1 || stats[0].TrackSID == "" || stats[0].PacketsSent == 0 || stats[0].BitrateBps < 8_000 {
		t.Fatalf("stats %+v, want the microphone sending", stats)
	}
	t.Logf("microphone: %.0f bit/s, %d packets sent, %d lost, jitter %v, RTT %v",
		stats[0].BitrateBps, stats[0].PacketsSent, stats[0].PacketsLost, stats[0].Jitter, stats[0].RTT)
}

// Signal drops in quick succession, each right after the previous resume: every one is
// resumed, the participant is never replaced.
func TestRepeatedSignalCutsResume(t *testing.T) {
	noLeak(t)
	_, proxy, w, b := proxiedBox(t)
	for i := range 3 {
		proxy.CutAll()
		if ev, _ := waitEvent[signaling.Reconnected](t, b, 15*time.Second); !ev.Resumed {
			t.Fatalf("cut %d: rejoined instead of resuming", i+1)
		}
	}
	w.flowing(t, "after three resumes")
	if st := b.room.State(); st.Joins != 1 || st.Resumes != 3 {
		t.Fatalf("joins %d, resumes %d; want 1 and 3", st.Joins, st.Resumes)
	}
}

// A flapping link: the signal connection is cut three times within 100 ms, the later cuts
// landing on the resume's own connection. The same participant comes back (the server
// lists one box, with the sid it had), and the media flows again.
func TestFlappingSignalResumesSameParticipant(t *testing.T) {
	noLeak(t)
	srv, proxy, w, b := proxiedBox(t)
	sid := b.room.State().Local.SID
	start := time.Now()
	for i := range 3 {
		accepted := proxy.Accepted()
		proxy.CutAll()
		if i == 2 {
			break
		}
		// The next cut goes to the resume's connection as soon as there is one, at most 40 ms on.
		for deadline := time.Now().Add(40 * time.Millisecond); proxy.Accepted() == accepted && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	t.Logf("3 cuts in %v", time.Since(start).Round(time.Millisecond))
	if ev, _ := waitEvent[signaling.Reconnected](t, b, 20*time.Second); !ev.Resumed {
		t.Fatal("rejoined instead of resuming")
	}
	w.flowing(t, "after the flapping")
	st := b.room.State()
	if st.Joins != 1 || st.Local.SID != sid {
		t.Fatalf("joins %d, sid %s; want 1 and the same sid %s", st.Joins, st.Local.SID, sid)
	}
	ps, err := srv.ListParticipants(context.Background(), testRoom)
	if err != nil {
		t.Fatal(err)
	}
	var boxes []string
	for _, p := range ps {
		if p.Identity == "box" {
			boxes = append(boxes, p.Sid)
		}
	}
	if len(boxes) != 1 || boxes[0] != sid {
		t.Fatalf("server lists box as %v, want exactly %s", boxes, sid)
	}
}

func TestRejoinAfterServerKilled(t *testing.T) {
	noLeak(t)
	srv := lktest.Start(t)
	b := startBox(t, srv.URL, signaling.StaticToken(lktest.Token(t, testRoom, "box")), true)
	waitEvent[signaling.Joined](t, b, 15*time.Second)

	srv.Kill()
	ev, _ := waitEvent[signaling.Reconnecting](t, b, 20*time.Second)
	t.Logf("server killed: %v", ev.Reason)
	time.Sleep(time.Second) // the server stays down for a moment
	srv.Restart()
	back := time.Now()
	rec, at := waitEvent[signaling.Reconnected](t, b, 30*time.Second)
	if rec.Resumed {
		t.Fatal("a restarted server resumed the old participant; want a full rejoin")
	}
	t.Logf("rejoin: server back -> rejoined and republished in %v", at.Sub(back).Round(time.Millisecond))

	// Republished with the same mute state, and only once.
	p, err := srv.WaitParticipant(context.Background(), testRoom, "box", func(p *livekit.ParticipantInfo) bool {
		return lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE) != nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if mic := lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE); !mic.Muted {
		t.Fatal("microphone republished unmuted after the rejoin")
	}
	if n := len(p.Tracks); n != 1 {
		t.Fatalf("box has %d tracks after the rejoin, want 1", n)
	}
	if st := b.room.State(); st.Joins != 2 || !st.Muted[signaling.SourceMicrophone] {
		t.Fatalf("state after rejoin: %+v", st)
	}
}

// A token that expires during the session: the session outlives it (the server refreshes
// it), and a rejoin after expiry never presents an expired token.
func TestShortLivedToken(t *testing.T) {
	noLeak(t)
	srv := lktest.Start(t)
	var minted atomic.Int32
	tokens := signaling.TokenFunc(func(ctx context.Context) (string, error) {
		minted.Add(1)
		return lktest.MintToken(testRoom, "box", lktest.TokenTTL(4*time.Second))
	})
	b := startBox(t, srv.URL, tokens, false)
	waitEvent[signaling.Joined](t, b, 15*time.Second)
	w := startWatcher(t, srv)
	time.Sleep(6 * time.Second) // past the first token's expiry
	w.flowing(t, "after the token expired")

	srv.Kill()
	time.Sleep(500 * time.Millisecond)
	srv.Restart()
	// Every failed attempt until the rejoin: none may be the server refusing a token.
	reasons := untilReconnected(t, b, 30*time.Second)
	for _, err := range reasons {
		var he *signaling.HTTPError
		if errors.As(err, &he) || errors.Is(err, signaling.ErrTokenExpired) {
			t.Fatalf("a join presented an unusable token after expiry: %v", err)
		}
	}
	st := b.room.State()
	if !st.Connected || st.Joins != 2 {
		t.Fatalf("after the restart: connected %v, joins %d; want true, 2", st.Connected, st.Joins)
	}
	// The first join and the rejoin each asked the token source for a fresh token (the
	// resume attempt in between uses the session's refreshed token).
	if n := minted.Load(); n < 2 {
		t.Fatalf("token source asked %d time(s); the rejoin did not ask it", n)
	}
	t.Logf("token source asked %d times; attempts before the rejoin: %v", minted.Load(), reasons)
}

// untilReconnected collects the reasons of Reconnecting events until Reconnected.
func untilReconnected(t testing.TB, b *box, d time.Duration) []error {
	t.Helper()
	deadline := time.After(d)
	var reasons []error
	for {
		select {
		case e := <-b.events:
			switch ev := e.(type) {
			case signaling.Reconnecting:
				reasons = append(reasons, ev.Reason)
			case signaling.Reconnected:
				return reasons
			}
		case <-deadline:
			t.Fatalf("not reconnected within %v; attempts failed with %v", d, reasons)
			return nil
		}
	}
}

// Two livekit-server nodes share redis behind a load balancer; the node hosting the room
// is killed. The box is back in the room through the other node, whether its signal
// connection was on the killed node (it drops at once) or on the survivor (it stays up, and
// the box notices the media connection going quiet).
func TestRejoinThroughOtherNode(t *testing.T) {
	for _, tc := range []struct {
		name         string
		signalOnHost bool
	}{{"signal on the host", true}, {"signal on the survivor", false}} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			cluster := lktest.StartCluster(t, 2)
			host, survivor := cluster.Nodes[0], cluster.Nodes[1]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := cluster.CreateRoomOn(ctx, host, &livekit.CreateRoomRequest{Name: testRoom}); err != nil {
				t.Fatal(err)
			}
			first := survivor
			if tc.signalOnHost {
				first = host
			}
			// The box's signal connection goes to first; once the host is dead it refuses, and
			// new connections go to the survivor.
			lb := faultnet.NewLoadBalancer(t, first.Addr(), cluster.Addrs()[0], cluster.Addrs()[1])
			b := startBox(t, lb.URL("ws"), signaling.StaticToken(lktest.Token(t, testRoom, "box")), false)
			waitEvent[signaling.Joined](t, b, 15*time.Second)
			if h, err := cluster.WaitRoomHost(ctx, testRoom); err != nil || h != host {
				t.Fatalf("room host %v, %v; want node 0", h, err)
			}
			cluster.Kill(0)
			killed := time.Now()
			reasons := untilReconnected(t, b, 60*time.Second)
			t.Logf("node failover, %s: host killed -> box back in the room in %v (%d failed attempts: %v)",
				tc.name, time.Since(killed).Round(time.Millisecond), len(reasons), reasons)
			p, err := survivor.WaitParticipant(context.Background(), testRoom, "box", func(p *livekit.ParticipantInfo) bool {
				return lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE) != nil
			})
			if err != nil {
				t.Fatalf("box not republished on the surviving node: %v", err)
			}
			if p.State == livekit.ParticipantInfo_DISCONNECTED {
				t.Fatalf("box listed but disconnected: %v", p)
			}
			ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel2()
			if host2, err := cluster.WaitRoomHost(ctx2, testRoom); err != nil || host2 != survivor {
				t.Fatalf("room host after failover: %v, %v; want the survivor", host2, err)
			}
		})
	}
}

// BenchmarkResumeAfterSignalCut: signal WebSocket cut -> the same participant resumed.
func BenchmarkResumeAfterSignalCut(b *testing.B) {
	_, proxy, _, bx := proxiedBox(b)
	var total time.Duration
	for b.Loop() {
		proxy.CutAll()
		cut := time.Now()
		if ev, at := waitEvent[signaling.Reconnected](b, bx, 15*time.Second); ev.Resumed {
			total += at.Sub(cut)
		} else {
			b.Fatal("rejoined instead of resuming")
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/resume")
}

// BenchmarkRejoinAfterServerRestart: livekit-server killed and restarted -> the box
// rejoined and republished, measured from the server answering again.
func BenchmarkRejoinAfterServerRestart(b *testing.B) {
	srv := lktest.Start(b)
	bx := startBox(b, srv.URL, signaling.StaticToken(lktest.Token(b, testRoom, "box")), false)
	waitEvent[signaling.Joined](b, bx, 15*time.Second)
	var total time.Duration
	for b.Loop() {
		srv.Kill()
		srv.Restart()
		back := time.Now()
		untilReconnected(b, bx, 30*time.Second)
		total += time.Since(back)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/rejoin")
}

// Closing the room client returns promptly whatever it is doing, and leaves no goroutine.
func TestCloseDuringAnyPhase(t *testing.T) {
	const prompt = 3 * time.Second // generous: a close waits for nothing but local teardown
	phases := []struct {
		name   string
		before func(t *testing.T, p *faultnet.Proxy) // fault set before the box starts
		reach  func(t *testing.T, b *box, p *faultnet.Proxy, srv *lktest.Server)
	}{
		{"dialing a black hole", func(t *testing.T, p *faultnet.Proxy) { p.Pause(true) },
			func(t *testing.T, b *box, p *faultnet.Proxy, srv *lktest.Server) { time.Sleep(500 * time.Millisecond) }},
		{"backing off after refusals", func(t *testing.T, p *faultnet.Proxy) { p.Refuse(true) },
			func(t *testing.T, b *box, p *faultnet.Proxy, srv *lktest.Server) {
				waitEvent[signaling.Reconnecting](t, b, 10*time.Second)
			}},
		{"in the room", nil, func(t *testing.T, b *box, p *faultnet.Proxy, srv *lktest.Server) {
			waitEvent[signaling.Joined](t, b, 15*time.Second)
		}},
		{"resuming", nil, func(t *testing.T, b *box, p *faultnet.Proxy, srv *lktest.Server) {
			waitEvent[signaling.Joined](t, b, 15*time.Second)
			startWatcher(t, srv).flowing(t, "before the cut")
			p.Refuse(true)
			p.CutAll()
			if ev, _ := waitEvent[signaling.Reconnecting](t, b, 10*time.Second); !ev.Resume {
				t.Fatal("not resuming")
			}
		}},
	}
	for _, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			noLeak(t)
			srv := lktest.Start(t)
			proxy := faultnet.NewProxy(t, strings.TrimPrefix(srv.URL, "ws://"))
			if ph.before != nil {
				ph.before(t, proxy)
			}
			b := startBox(t, proxy.URL("ws"), signaling.StaticToken(lktest.Token(t, testRoom, "box")), false)
			ph.reach(t, b, proxy, srv)
			start := time.Now()
			b.stop()
			if took := time.Since(start); took > prompt {
				t.Fatalf("closing took %v", took)
			}
			proxy.Pause(false) // release what the black hole held, before the leak check
		})
	}
}

// Remote audio is subscribed as it is published; a track can be unsubscribed explicitly.
func TestAudioAutoSubscribeAndExplicitUnsubscribe(t *testing.T) {
	noLeak(t)
	srv := lktest.Start(t)
	a := startBox(t, srv.URL, signaling.StaticToken(lktest.Token(t, testRoom, "a")), false)
	waitEvent[signaling.Joined](t, a, 15*time.Second)
	b := startBox(t, srv.URL, signaling.StaticToken(lktest.Token(t, testRoom, "b")), false)
	waitEvent[signaling.Joined](t, b, 15*time.Second)
	bMic := b.room.State().Published[signaling.SourceMicrophone]
	subscribed := func() bool {
		for _, sid := range a.room.State().Subscribed {
			if sid == bMic {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for !subscribed() || a.remoteTracks.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a did not subscribe to b's microphone %s (subscribed %v, tracks %d)", bMic, a.room.State().Subscribed, a.remoteTracks.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.room.SetSubscribed(context.Background(), bMic, false); err != nil {
		t.Fatal(err)
	}
	if subscribed() {
		t.Fatal("still subscribed after SetSubscribed(false)")
	}
}
