package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"roombox/control"
	"roombox/localapi"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/internal/testkit/faultnet"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/signaling"
)

const (
	// The schedule: a random gap between events, and a killed server's random downtime.
	minGap, maxGap   = 2 * time.Second, 10 * time.Second
	minDown, maxDown = 500 * time.Millisecond, 4 * time.Second
	// statusTimeout bounds one LocalAPI call.
	statusTimeout = 10 * time.Second
	// agreeTimeout bounds the server's catching up with the box's mute.
	agreeTimeout = 10 * time.Second
	pollEvery    = 100 * time.Millisecond
)

// event is one kind of churn, drawn with its weight.
type event struct {
	name   string
	weight int
	do     func(*churn)
}

var events = []event{
	{"signal cut", 3, (*churn).cut},
	{"server kill", 1, (*churn).kill},
	{"mute toggle", 4, (*churn).toggleMute},
	{"subscriber", 2, (*churn).toggleSubscriber},
}

// churn drives the schedule on the test goroutine: every fault is followed by a wait for
// the box to be back in its room, so the next event meets a box that has recovered.
type churn struct {
	t      *testing.T
	rng    *rand.Rand
	srv    *lktest.Server
	proxy  *faultnet.Proxy
	daemon *roomboxtest.Daemon
	api    *localapi.Client
	mutes  *muteLog
	start  time.Time

	sub        *subscriber
	joined     int // subscribers joined so far, for their identities
	counts     map[string]int
	recoveries map[string][]time.Duration
}

// run draws events until end; the gaps are the workload's pacing, not waits for a fact.
func (c *churn) run(end time.Time) {
	c.t.Cleanup(c.leaveSubscriber)
	for range int(time.Until(end)/minGap) + 1 {
		gap := minGap + time.Duration(c.rng.Int64N(int64(maxGap-minGap)))
		if time.Now().Add(gap).After(end) {
			return
		}
		time.Sleep(gap)
		ev := c.pick()
		c.logf("%s", ev.name)
		ev.do(c)
		c.counts[ev.name]++
		if exited, err := c.daemon.Exited(); exited {
			c.t.Fatalf("roombox run exited during the soak: %v", err)
		}
	}
}

func (c *churn) pick() event {
	total := 0
	for _, e := range events {
		total += e.weight
	}
	n := c.rng.IntN(total)
	for _, e := range events {
		if n -= e.weight; n < 0 {
			return e
		}
	}
	panic("unreachable")
}

func (c *churn) logf(format string, args ...any) {
	c.t.Helper()
	c.t.Logf("%6.1fs "+format, append([]any{time.Since(c.start).Seconds()}, args...)...)
}

func (c *churn) status() (control.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	return c.api.Status(ctx)
}

func (c *churn) mustStatus() control.Status {
	c.t.Helper()
	st, err := c.status()
	if err != nil {
		c.t.Fatalf("status: %v", err)
	}
	return st
}

// waitStatus polls the status until cond holds (an error, as while the daemon starts, is
// a no), failing the test after timeout with the last status and error.
func (c *churn) waitStatus(what string, timeout time.Duration, cond func(control.Status) bool) control.Status {
	c.t.Helper()
	var st control.Status
	ok, last := within(timeout, func() (bool, string) {
		var err error
		st, err = c.status()
		return err == nil && cond(st), fmt.Sprintf("status %+v, err %v", st, err)
	})
	if !ok {
		c.t.Fatalf("%.1fs: %s: not within %v (last: %s)", time.Since(c.start).Seconds(), what, timeout, last)
	}
	return st
}

// within polls f every pollEvery until it reports true or timeout has passed; it returns
// f's last answer and its description of what it saw.
func within(timeout time.Duration, f func() (bool, string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	for {
		ok, last := f()
		if ok || time.Now().After(deadline) {
			return ok, last
		}
		time.Sleep(pollEvery)
	}
}

// waitBack waits for the box in its room with cond true (a join or resume counted since
// the fault), then for the server to list its mic with the box's mute; it records how long
// the return took.
func (c *churn) waitBack(kind string, cond func(control.Status) bool) {
	c.t.Helper()
	from := time.Now()
	last := c.waitStatus("the box back in its room after a "+kind, recoverTimeout, func(st control.Status) bool {
		return st.State == "in-room" && cond(st)
	})
	took := time.Since(from)
	c.recoveries[kind] = append(c.recoveries[kind], took)
	c.logf("  back in %v (joins %d, resumes %d)", took.Round(time.Millisecond), last.Joins, last.Resumes)
	c.roomAgrees()
}

// roomAgrees checks that the server lists the box's mic with the mute the box has: a mute
// lost on a resume or a rejoin shows here.
func (c *churn) roomAgrees() {
	c.t.Helper()
	want := c.mutes.muted()
	ok, last := within(agreeTimeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
		defer cancel()
		p, err := c.srv.GetParticipant(ctx, room, identity)
		if err != nil {
			return false, err.Error()
		}
		mic := lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE)
		return mic != nil && mic.Muted == want, fmt.Sprintf("mic %v", mic)
	})
	if !ok {
		c.t.Errorf("%.1fs: the server does not list the mic muted=%v within %v (%s)", time.Since(c.start).Seconds(), want, agreeTimeout, last)
	}
}

// cut resets the signal connection (RST both ways): the box must resume or rejoin.
func (c *churn) cut() {
	before := c.mustStatus()
	if c.proxy.Conns() == 0 {
		c.logf("  no signal connection to cut (state %s)", before.State)
		return
	}
	c.proxy.CutAll()
	c.waitBack("signal cut", func(st control.Status) bool {
		return st.Joins > before.Joins || st.Resumes > before.Resumes
	})
}

// kill crashes the server and restarts it after a random downtime, sometimes toggling the
// mute meanwhile (a mute made with no room must hold through the rejoin). Any subscriber
// went down with the server.
func (c *churn) kill() {
	before := c.mustStatus()
	c.srv.Kill()
	down := minDown + time.Duration(c.rng.Int64N(int64(maxDown-minDown)))
	if c.rng.IntN(2) == 0 {
		c.toggleMute()
		c.counts["mute toggle"]++
	}
	time.Sleep(down)
	c.srv.Restart()
	c.logf("  server back after %v down", down.Round(time.Millisecond))
	c.leaveSubscriber()
	c.waitBack("server kill", func(st control.Status) bool { return st.Joins > before.Joins })
}

// toggleMute mutes or unmutes the mic through the LocalAPI or the sim button, and records
// when audio must be silent: an unmute from just before the call, a mute from when the
// status says muted.
func (c *churn) toggleMute() {
	c.t.Helper()
	want := !c.mutes.muted()
	how := "LocalAPI"
	if c.rng.IntN(2) == 0 {
		how = "button"
	}
	if !want {
		c.mutes.set(time.Now(), false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	var err error
	if how == "button" {
		err = c.api.Press(ctx, "mic")
	} else {
		err = c.api.SetMuted(ctx, control.TargetMic, want)
	}
	if err != nil {
		c.t.Fatalf("mute=%v through the %s: %v", want, how, err)
	}
	st := c.waitStatus(fmt.Sprintf("the status to say mic_muted=%v after the %s", want, how), statusTimeout, func(st control.Status) bool {
		return st.MicMuted == want
	})
	if want {
		c.mutes.set(time.Now(), true)
	}
	if st.LED != want {
		c.t.Errorf("%.1fs: mic muted=%v but the LED is %v", time.Since(c.start).Seconds(), want, st.LED)
	}
	c.logf("  mic muted=%v (%s)", want, how)
	if c.srv.Running() {
		c.roomAgrees()
	}
}

// toggleSubscriber has a participant join the room (subscribing to everything), or leave.
func (c *churn) toggleSubscriber() {
	if c.sub != nil {
		c.leaveSubscriber()
		return
	}
	c.joined++
	id := fmt.Sprintf("listener-%d", c.joined)
	sub, err := joinSubscriber(c.srv.URL, lktest.Token(c.t, room, id))
	if err != nil {
		c.t.Errorf("%.1fs: subscriber %s: %v", time.Since(c.start).Seconds(), id, err)
		return
	}
	c.sub = sub
	c.logf("  %s joined", id)
}

func (c *churn) leaveSubscriber() {
	if c.sub == nil {
		return
	}
	stayed := time.Since(c.sub.joined)
	n := c.sub.leave()
	c.sub = nil
	c.logf("  subscriber left after %v, %d packets received", stayed.Round(time.Second), n)
}

// report logs how many of each event ran and how long the box took to come back.
func (c *churn) report() {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n  %-12s %3d", e.name, c.counts[e.name])
		if r := slices.Clone(c.recoveries[e.name]); len(r) > 0 {
			slices.Sort(r)
			fmt.Fprintf(&b, "  back in: median %v, max %v", r[len(r)/2].Round(time.Millisecond), r[len(r)-1].Round(time.Millisecond))
		}
	}
	c.t.Logf("churn over %v (%d subscribers joined):%s", time.Since(c.start).Round(time.Second), c.joined, b.String())
}

// subscriber is another participant receiving everything the room sends it.
type subscriber struct {
	sess    *signaling.Session
	joined  time.Time
	wg      sync.WaitGroup
	packets atomic.Int64
}

func joinSubscriber(url, token string) (*subscriber, error) {
	s := &subscriber{joined: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess, err := signaling.Connect(ctx, url, token, signaling.Options{AutoSubscribe: true, OnTrack: s.read})
	if err != nil {
		return nil, err
	}
	s.sess = sess
	return s, nil
}

// read counts a track's packets until it ends (the session closes).
func (s *subscriber) read(rt *signaling.RemoteTrack) {
	s.wg.Go(func() {
		for {
			if _, _, err := rt.Track.ReadRTP(); err != nil {
				return
			}
			s.packets.Add(1)
		}
	})
}

// leave closes the session, waits for its readers and returns the packets received.
func (s *subscriber) leave() int64 {
	_ = s.sess.Close()
	s.wg.Wait()
	return s.packets.Load()
}
