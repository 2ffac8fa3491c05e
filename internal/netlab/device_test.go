//go:build linux

package netlab_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/internal/lktest"
	"roombox/internal/netlab"
)

// roombox returns $ROOMBOX_BIN, else <repo>/bin/roombox (make build); it fails the test
// when neither exists (make test builds it).
func roombox(t *testing.T) string {
	t.Helper()
	p := os.Getenv("ROOMBOX_BIN")
	if p == "" {
		p = "../../bin/roombox"
	}
	p, _ = filepath.Abs(p)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no roombox binary (%v): run make build or set ROOMBOX_BIN", err)
	}
	return p
}

// roomboxDaemon is `roombox run` in the lab's device namespace, started by startRoombox.
type roomboxDaemon struct {
	state   string        // its --state-dir
	logPath string        // its stdout and stderr
	started time.Time     // just after the process started
	done    chan struct{} // closed when the process has exited
	err     error         // cmd.Wait's result, valid after done
}

// exited reports whether the daemon has exited, and how.
func (d *roomboxDaemon) exited() (bool, error) {
	select {
	case <-d.done:
		return true, d.err
	default:
		return false, nil
	}
}

// roomboxStop says what startRoombox's cleanup checks and logs besides stopping the daemon.
type roomboxStop struct {
	// check fails the test if the daemon does not exit cleanly within 10 s of SIGTERM (an
	// unclean exit only when the test has not already failed).
	check bool
	// digest, if set, summarises the daemon's log in a passing test. A failed test always
	// logs the whole of it.
	digest func(log string) string
}

// startRoombox provisions a state dir for url and token with `roombox provision` in the
// device namespace (bounded by ctx), then starts `roombox run --hal sim` there with its
// output in a log file and Pdeathsig SIGKILL. The test's cleanup sends SIGTERM, kills the
// daemon if it is still running 10 s later, and logs as stop says.
func startRoombox(ctx context.Context, t *testing.T, lab *netlab.Lab, bin, url, token string, stop roomboxStop) *roomboxDaemon {
	t.Helper()
	state := t.TempDir()
	out, err := lab.CommandContext(ctx, lab.DeviceNS, bin, "provision", "--state-dir", state,
		"--url", url, "--token", token).CombinedOutput()
	if err != nil {
		t.Fatalf("roombox provision: %v\n%s", err, out)
	}

	logPath := filepath.Join(t.TempDir(), "roombox.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the daemon holds its own descriptor
	cmd := lab.Command(lab.DeviceNS, bin, "run", "--hal", "sim", "--state-dir", state, "--http", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &roomboxDaemon{state: state, logPath: logPath, started: time.Now(), done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
			if stop.check && d.err != nil && !t.Failed() {
				t.Errorf("roombox run exited with %v after SIGTERM", d.err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-d.done
			if stop.check {
				t.Errorf("roombox run did not stop within 10 s of SIGTERM")
			}
		}
		b, _ := os.ReadFile(logPath)
		if t.Failed() {
			t.Logf("roombox log:\n%s", b)
		} else if stop.digest != nil {
			t.Logf("roombox log, state changes and warnings:\n%s", stop.digest(string(b)))
		}
	})
	return d
}

// TestDeviceThroughDelayedRelay runs the roombox daemon in the device namespace and
// livekit-server in the server namespace, blocks every UDP path from the device except the
// TURN port, and checks that the device still joins and publishes: its media go through the
// delaying relay.
func TestDeviceThroughDelayedRelay(t *testing.T) {
	bin := roombox(t)
	lab := netlab.New(t)
	relay := netlab.StartTURN(t, lab, 50*time.Millisecond)
	lk := netlab.StartLiveKit(t, lab, relay)
	lab.Device.Block(relay.Port)

	const room, identity = "netlab", "box"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d := startRoombox(ctx, t, lab, bin, lk.DeviceURL, lktest.Token(t, room, identity), roomboxStop{})

	begin := time.Now()
	p, err := lk.WaitParticipant(ctx, room, identity, func(p *livekit.ParticipantInfo) bool {
		return lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE) != nil
	})
	if err != nil {
		t.Fatalf("device did not publish through the relay: %v", err)
	}
	t.Logf("device published %d tracks %v after start", len(p.GetTracks()), time.Since(begin).Round(time.Millisecond))
	if relay.Allocations() == 0 {
		t.Errorf("no TURN allocation: the device did not use the relay")
	}
	r0, _ := relay.Stats()
	time.Sleep(2 * time.Second)
	r1, dropped := relay.Stats()
	t.Logf("relay: %d allocations, %d packets relayed in 2 s, %d dropped by full queues", relay.Allocations(), r1-r0, dropped)
	if r1-r0 < 50 {
		t.Errorf("only %d packets through the relay in 2 s: media do not flow through it", r1-r0)
	}
	if gone, err := d.exited(); gone {
		t.Fatalf("roombox exited: %v", err)
	}
}
