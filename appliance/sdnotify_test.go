package appliance

import (
	"context"
	"log/slog"
	"roombox/control"
	"roombox/localapi"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"roombox/hal"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/notifytest"
	"roombox/internal/testkit/testwait"
	"roombox/media"
)

// listenNotify is a notify socket named in NOTIFY_SOCKET, with WATCHDOG_USEC set to
// watchdog. It sets the environment, so its tests cannot be parallel.
func listenNotify(t *testing.T, watchdog time.Duration) *notifytest.Socket {
	t.Helper()
	s := notifytest.Listen(t)
	t.Setenv("NOTIFY_SOCKET", s.Path)
	t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
	return s
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

	before := msgs.Await(t, "READY=1", 20*time.Second)
	if notifytest.Count(before, "STATUS=unprovisioned") != 1 {
		t.Fatalf("before READY=1: %q; want STATUS=unprovisioned once", before)
	}
	// Ready means ready: the LocalAPI answers at once, no retry.
	ctx := context.Background()
	api := localapi.Dial(dir)
	if st, err := api.Status(ctx); err != nil || st.State != control.StateUnprovisioned.String() {
		t.Fatalf("LocalAPI after READY=1: %+v, %v", st, err)
	}

	healthy := msgs.Collect(4 * watchdog)
	if n := notifytest.Count(healthy, "WATCHDOG=1"); n < 5 {
		t.Fatalf("%d WATCHDOG=1 in %v with WATCHDOG_USEC=%v, want >= 5 (one each half interval): %q", n, 4*watchdog, watchdog, healthy)
	}

	close(stall)
	// A pet already due as the loop stalled may still arrive within half an interval (a
	// whole one here, for a slow host).
	msgs.Collect(watchdog)
	// The rest of the daemon still runs: a provisioning changes the state, and STATUS= says so.
	if err := api.Provision(ctx, control.Provisioning{URL: "ws://127.0.0.1:1", Token: lktest.Token(t, "boardroom", "box")}); err != nil {
		t.Fatal(err)
	}
	stalled := msgs.Collect(3 * watchdog)
	if n := notifytest.Count(stalled, "WATCHDOG=1"); n != 0 {
		t.Fatalf("%d WATCHDOG=1 in the %v after the main loop stalled, want none: %q", n, 3*watchdog, stalled)
	}
	if notifytest.Count(stalled, "STATUS=connecting room=boardroom") != 1 {
		t.Fatalf("after provisioning with the main loop stalled: %q; want STATUS=connecting room=boardroom", stalled)
	}

	cancel()
	<-run.Done()
	if err := run.Err(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	msgs.Await(t, "STOPPING=1", time.Second)
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
		enc, err := media.NewX264(media.X264Config{EncoderConfig: cfg})
		return wedgingEncoder{VideoEncoder: enc, wedged: &wedged}, err
	}
	runNotified(t, t.Context(), board, Options{encodeStall: watchdog})

	msgs.Await(t, "READY=1", 20*time.Second)
	msgs.Await(t, "WATCHDOG=1", 2*watchdog)
	wedged.Store(true)
	// The pets stop once the blocked call is older than the limit: within the limit, a frame
	// period and half an interval (twice the limit here, for a slow host).
	msgs.Collect(2 * watchdog)
	stuck := msgs.Collect(3 * watchdog)
	if n := notifytest.Count(stuck, "WATCHDOG=1"); n != 0 {
		t.Fatalf("%d WATCHDOG=1 in %v with the video encoder wedged, want none: %q", n, 3*watchdog, stuck)
	}
	wedged.Store(false)
	msgs.Await(t, "WATCHDOG=1", 2*watchdog)
}
