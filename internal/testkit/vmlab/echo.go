//go:build linux

package vmlab

import (
	"fmt"
	"os"
)

// The echo check runs in two halves: the guest's TestRoomboxEcho (the box and the echo
// loop on the real ALSA devices) and the host's TestLabEcho (livekit-server, and the
// far-end talker, which measures its own speech in the box's audio). The talker and the
// server run on the host because in the guest they took half of the guest's CPU under
// TCG, and the daemon's audio then overran (docs/BENCHMARKS.md).

// EchoReady is the line the guest prints when the box is in the room and its LocalAPI is
// relayed: the host's talker may join.
const EchoReady = "VMLAB-ECHO-READY"

// EchoEnv names the guest variable that carries Echo.
const EchoEnv = "ROOMBOX_LAB_ECHO"

// Echo is what the guest's half of the echo check is told.
type Echo struct {
	// Signal is the host's livekit-server port, which the guest reaches as 10.0.2.2
	// through qemu's user-mode network (whose UDP NAT also carries the box's media).
	Signal int
	// API is the guest port of its relay to the daemon's LocalAPI socket; qemu forwards
	// the host's loopback port of the same number to it.
	API int
}

// Env is e as EchoEnv's assignment.
func (e Echo) Env() string { return fmt.Sprintf("%s=%d,%d", EchoEnv, e.Signal, e.API) }

// EchoFromEnv reads what the host set.
func EchoFromEnv() (Echo, error) {
	var e Echo
	v := os.Getenv(EchoEnv)
	if _, err := fmt.Sscanf(v, "%d,%d", &e.Signal, &e.API); err != nil {
		return e, fmt.Errorf("vmlab: $%s = %q, want SIGNAL,API ports: %w", EchoEnv, v, err)
	}
	return e, nil
}
