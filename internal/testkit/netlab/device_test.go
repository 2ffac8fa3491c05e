//go:build linux

package netlab_test

import (
	"context"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/netlab"
	"roombox/internal/testkit/roomboxtest"
)

// startRoombox provisions a state dir for url and token with `roombox provision` in the
// device namespace (bounded by ctx), then starts `roombox run --hal sim` there with
// roomboxtest.StartCmd: the test's cleanup sends SIGTERM, fails the test unless the daemon
// exits cleanly within 10 s, and logs its whole log if the test failed. digest, if set,
// summarises the log in a passing test.
func startRoombox(ctx context.Context, t *testing.T, lab *netlab.Lab, bin, url, token string, digest func(log string) string) *roomboxtest.Daemon {
	t.Helper()
	state := t.TempDir()
	out, err := lab.CommandContext(ctx, lab.DeviceNS, bin, "provision", "--state-dir", state,
		"--url", url, "--token", token).CombinedOutput()
	if err != nil {
		t.Fatalf("roombox provision: %v\n%s", err, out)
	}
	var d *roomboxtest.Daemon
	if digest != nil {
		// Registered before the daemon's own cleanup, so it runs after that has stopped it.
		t.Cleanup(func() {
			if d != nil && !t.Failed() {
				t.Logf("roombox log, state changes and warnings:\n%s", digest(d.LogText()))
			}
		})
	}
	d = roomboxtest.StartCmd(t, lab.Command(lab.DeviceNS, bin, roomboxtest.RunArgs(state)...), state)
	return d
}

// TestDeviceThroughDelayedRelay runs the roombox daemon in the device namespace and
// livekit-server in the server namespace, blocks every UDP path from the device except the
// TURN port, and checks that the device still joins and publishes: its media go through the
// delaying relay.
func TestDeviceThroughDelayedRelay(t *testing.T) {
	bin := roomboxtest.Binary(t)
	lab := netlab.New(t)
	relay := netlab.StartTURN(t, lab, 50*time.Millisecond)
	lk := netlab.StartLiveKit(t, lab, relay)
	lab.Device.Block(relay.Port)

	const room, identity = "netlab", "box"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d := startRoombox(ctx, t, lab, bin, lk.DeviceURL, lktest.Token(t, room, identity), nil)

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
	if gone, err := d.Exited(); gone {
		t.Fatalf("roombox exited: %v", err)
	}
}
