package device

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"roombox/hal"
	"roombox/internal/lktest"
	"roombox/internal/testwait"
	"roombox/media"
)

// listenNotify is systemd's side of the notify protocol for one test: a unixgram socket
// named in NOTIFY_SOCKET, with WATCHDOG_USEC set to watchdog, and the messages it receives.
// It sets the environment, so its tests cannot be parallel.
func listenNotify(t *testing.T, watchdog time.Duration) <-chan string {
	t.Helper()
	// Not t.TempDir: its path can exceed a socket address's 108 bytes.
	dir, err := os.MkdirTemp("", "notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
	msgs := make(chan string, 1024)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return msgs
}

// awaitNotify reads msgs until one equal to want (or, with a trailing "*", starting with
// it), failing after d, and returns the messages read before it.
func awaitNotify(t *testing.T, msgs <-chan string, want string, d time.Duration) []string {
	t.Helper()
	var before []string
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-msgs:
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

// collectNotify returns every message that arrives within d.
func collectNotify(msgs <-chan string, d time.Duration) []string {
	var got []string
	timeout := time.After(d)
	for {
		select {
		case m := <-msgs:
			got = append(got, m)
		case <-timeout:
			return got
		}
	}
}

func countNotify(msgs []string, want string) int {
	n := 0
	for _, m := range msgs {
		if m == want {
			n++
		}
	}
	return n
}

// runNotified runs the daemon on board, unprovisioned, until stop is cancelled (or the test
// ends), with the test options set in opts.
func runNotified(t *testing.T, stop context.Context, board *hal.Board, opts Options) (dir string, run *testwait.Running) {
	t.Helper()
	dir = t.TempDir()
	opts.StateDir, opts.HTTPAddr, opts.board = dir, "127.0.0.1:0", board
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	run = testwait.Go(t, "Run", 20*time.Second, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
		return Run(ctx, opts)
	})
	return dir, run
}

// The daemon speaks systemd's notify protocol: STATUS= with its state, READY=1 once its
// LocalAPI answers, WATCHDOG=1 every half interval from its main loop, none once that loop
// is stuck (while STATUS= still flows from the rest of the daemon), and STOPPING=1.
func TestSystemdNotify(t *testing.T) {
	const watchdog = 400 * time.Millisecond
	msgs := listenNotify(t, watchdog)
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	stall := make(chan struct{})
	dir, run := runNotified(t, stop, simParts(t), Options{stall: stall})

	before := awaitNotify(t, msgs, "READY=1", 20*time.Second)
	if countNotify(before, "STATUS=unprovisioned") != 1 {
		t.Fatalf("before READY=1: %q; want STATUS=unprovisioned once", before)
	}
	// Ready means ready: the LocalAPI answers at once, no retry.
	ctx := context.Background()
	api := Dial(dir)
	if st, err := api.Status(ctx); err != nil || st.State != StateUnprovisioned.String() {
		t.Fatalf("LocalAPI after READY=1: %+v, %v", st, err)
	}

	healthy := collectNotify(msgs, 4*watchdog)
	if n := countNotify(healthy, "WATCHDOG=1"); n < 5 {
		t.Fatalf("%d WATCHDOG=1 in %v with WATCHDOG_USEC=%v, want >= 5 (one each half interval): %q", n, 4*watchdog, watchdog, healthy)
	}

	close(stall)
	// A pet already due as the loop stalled may still arrive within half an interval.
	collectNotify(msgs, watchdog/2)
	// The rest of the daemon still runs: a provisioning changes the state, and STATUS= says so.
	if err := api.Provision(ctx, Provisioning{URL: "ws://127.0.0.1:1", Token: lktest.Token(t, "boardroom", "box")}); err != nil {
		t.Fatal(err)
	}
	stalled := collectNotify(msgs, 3*watchdog)
	if n := countNotify(stalled, "WATCHDOG=1"); n != 0 {
		t.Fatalf("%d WATCHDOG=1 in the %v after the main loop stalled, want none: %q", n, 3*watchdog, stalled)
	}
	if countNotify(stalled, "STATUS=connecting room=boardroom") != 1 {
		t.Fatalf("after provisioning with the main loop stalled: %q; want STATUS=connecting room=boardroom", stalled)
	}

	cancel()
	<-run.Done()
	if err := run.Err(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	awaitNotify(t, msgs, "STOPPING=1", time.Second)
}

// wedgingEncoder is an encoder whose Encode blocks while wedged is set: a wedged hardware
// encoder.
type wedgingEncoder struct {
	hal.VideoEncoder
	wedged *atomic.Bool
}

func (e wedgingEncoder) Encode(f *hal.Frame, forceKey bool) (hal.EncodedFrame, error) {
	for e.wedged.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	return e.VideoEncoder.Encode(f, forceKey)
}

// An encoder call that runs longer than the encode stall limit stops the watchdog pets
// although the main loop runs; they resume when the call returns.
func TestWatchdogEncoderStall(t *testing.T) {
	const watchdog = 400 * time.Millisecond
	msgs := listenNotify(t, watchdog)
	var wedged atomic.Bool
	defer wedged.Store(false) // before the daemon's cleanup: its video pipeline must return
	board := simParts(t)
	board.EncoderName = "wedging"
	board.Encoder = func(cfg hal.EncoderConfig) (hal.VideoEncoder, error) {
		enc, err := media.NewX264(media.X264Config{Width: cfg.Width, Height: cfg.Height, FPS: cfg.FPS, Bitrate: cfg.Bitrate})
		return wedgingEncoder{VideoEncoder: enc, wedged: &wedged}, err
	}
	runNotified(t, t.Context(), board, Options{encodeStall: watchdog})

	awaitNotify(t, msgs, "READY=1", 20*time.Second)
	awaitNotify(t, msgs, "WATCHDOG=1", 2*watchdog)
	wedged.Store(true)
	// The pets stop once the blocked call is older than the limit: within the limit plus
	// half an interval.
	collectNotify(msgs, watchdog+watchdog/2)
	stuck := collectNotify(msgs, 3*watchdog)
	if n := countNotify(stuck, "WATCHDOG=1"); n != 0 {
		t.Fatalf("%d WATCHDOG=1 in %v with the video encoder wedged, want none: %q", n, 3*watchdog, stuck)
	}
	wedged.Store(false)
	awaitNotify(t, msgs, "WATCHDOG=1", 2*watchdog)
}
