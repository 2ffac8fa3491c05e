// Package soak runs the real roombox binary for minutes of churn against a real
// livekit-server and watches for leaks and privacy violations. It runs only when asked:
// ROOMBOX_SOAK=1 (make soak).
package soak

import (
	"context"
	"math/rand/v2"
	"os"
	"roombox/control"
	"roombox/localapi"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roombox/internal/testkit/faultnet"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/previewtest"
	"roombox/internal/testkit/roomboxtest"
)

const (
	room     = "soak"
	identity = "roombox-soak"

	defaultDuration = 10 * time.Minute
	// teardownMargin is what the test needs beyond SOAK_DURATION: start, the last event's
	// recovery, the report and the cleanups.
	teardownMargin = 5 * time.Minute
	// recoverTimeout bounds the box's return to its room after a cut or a server restart
	// (invariant 5: every fault ends in a retry); the capped backoff is well inside it.
	recoverTimeout = 90 * time.Second
)

// config is what the environment asks of the soak.
type config struct {
	duration time.Duration
	seed     uint64
}

func soakConfig(t *testing.T) config {
	t.Helper()
	if os.Getenv("ROOMBOX_SOAK") == "" {
		t.Skip("soak: runs only with ROOMBOX_SOAK=1: `make soak` (10 min; SOAK_DURATION=2m for a quick one, " +
			"SOAK_SEED=N replays a schedule), or ROOMBOX_SOAK=1 SOAK_DURATION=2m go test -v -run TestSoak ./test/soak")
	}
	c := config{duration: defaultDuration, seed: uint64(time.Now().UnixNano())}
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("SOAK_DURATION=%q: want a positive duration such as 10m", v)
		}
		c.duration = d
	}
	if v := os.Getenv("SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", v, err)
		}
		c.seed = s
	}
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < c.duration+teardownMargin {
		t.Fatalf("SOAK_DURATION=%v needs a go test -timeout of at least %v (make soak SOAK_TIMEOUT=...)", c.duration, c.duration+teardownMargin)
	}
	return c
}

// TestSoak provisions `roombox run --hal sim` into a livekit-server whose signal port it
// reaches through a faultnet proxy, then churns for SOAK_DURATION on a random schedule
// (seed logged): signal cuts, server kills and restarts, mic mute toggles (LocalAPI and the
// button), subscribers joining and leaving. After each fault the box must be back in its
// room, and the server must list its mic with the box's mute. Throughout, the daemon's RSS
// and goroutine count are sampled every 10 s (series and slopes reported; a clear leak
// fails) and the preview, what leaves the box, is decoded for the mic's tone while muted
// (any tone fails).
func TestSoak(t *testing.T) {
	cfg := soakConfig(t)
	t.Logf("soak: %v, seed %d (SOAK_SEED=%d replays this schedule)", cfg.duration, cfg.seed, cfg.seed)

	srv := lktest.Start(t)
	proxy := faultnet.NewProxy(t, strings.TrimPrefix(srv.URL, "ws://"))
	bin := roomboxtest.Binary(t)
	stateDir := roomboxtest.StateDir(t)
	token := lktest.Token(t, room, identity, lktest.TokenTTL(cfg.duration+time.Hour))
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--url", proxy.URL("ws"), "--token", token)
	d := roomboxtest.Start(t, bin, stateDir)
	start := time.Now()
	c := &churn{t: t, rng: rand.New(rand.NewPCG(cfg.seed, 0)), srv: srv, proxy: proxy, daemon: d,
		api: localapi.Dial(stateDir), mutes: newMuteLog(start), start: start,
		counts: map[string]int{}, recoveries: map[string][]time.Duration{}}
	c.waitBack("start", func(control.Status) bool { return true })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess, err := previewtest.Login(ctx, d.PageURL(t), d.SetupCode(t))
	if err != nil {
		t.Fatal(err)
	}
	privacy := &privacyMonitor{sess: sess, mutes: c.mutes, logf: t.Logf}
	res := &sampler{pid: d.PID(), sess: sess}
	watchCtx, stopWatching := context.WithCancel(context.Background())
	var watchers sync.WaitGroup
	watchers.Go(func() { privacy.run(watchCtx) })
	watchers.Go(func() { res.run(watchCtx) })
	stop := func() {
		stopWatching()
		watchers.Wait()
	}
	t.Cleanup(stop) // after a failure; a second call is harmless

	c.run(start.Add(cfg.duration))
	c.leaveSubscriber()
	stop()
	end := time.Now()

	c.report()
	privacy.report(t, end)
	reportResources(t, res.samples, res.errs, end.Sub(start))
}
