package appliance

import (
	"crypto/ed25519"
	"log/slog"
	"roombox/appliance/store"
	"roombox/hal/sim/acoustic"
	"time"

	"roombox/hal"
)

// Options configure the daemon (`roombox run`).
type Options struct {
	Hal      string // "sim" or "linux"
	StateDir string
	HTTPAddr string
	Logger   *slog.Logger
	// FleetKey is the fleet key the image pins; nil: trust on first use.
	FleetKey ed25519.PublicKey
	// ProvisionFile is a provisioning token file (on the boot partition) consumed at start:
	// read, applied, deleted. Empty: none.
	ProvisionFile string
	// SimMic is a WAV file (48 kHz mono 16-bit) the simulated microphone plays in a loop
	// instead of its tone; empty: the tone. Only with Hal "sim".
	SimMic string
	// SimRoom puts the simulated board in a room (hal/sim/acoustic): its speaker's sound
	// comes back into its microphone. nil: no room. Only with Hal "sim".
	SimRoom *acoustic.Config
	// Video is the camera's capture and its simulcast layers; zero fields: DefaultVideo.
	Video VideoOptions
	// PinsFile is the GPIO pin map (YAML, hal/linux/gpio) of the linux hal; empty: the
	// documented Raspberry Pi default.
	PinsFile string
	// board, set by tests in this package, runs the daemon on it instead of opening Hal.
	board *hal.Board
	// stall, set by tests in this package, stalls the daemon's main loop once it is closed:
	// the loop stops petting systemd's watchdog, as a stuck one would.
	stall <-chan struct{}
	// encodeStall, set by tests in this package, replaces the package's encodeStall.
	encodeStall time.Duration
	// hooks, set by tests in this package, look inside the running daemon.
	hooks testHooks
}

// testHooks let tests in this package look inside a running daemon and pause a change
// between its stages; nil hooks do nothing.
type testHooks struct {
	// started receives the daemon once its saved state is applied, before it serves.
	started func(*daemon)
	// stage runs at each stage boundary of every change (daemon.update) with the state the
	// change recorded; a test blocks in it to hold that change while others go on.
	stage func(stage string, st store.SavedState)
}

// The stage boundaries of a change (testHooks.stage).
const (
	stageApplied = "applied" // recorded and applied; the room not told, nothing saved
	stageTold    = "told"    // the room told; nothing saved
)
