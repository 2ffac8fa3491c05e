package device

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"roombox/hal"
)

// State is the appliance's lifecycle state. Values are explicit because they appear in the
// LocalAPI, on the page and in metrics.
type State int

const (
	StateUnprovisioned State = 0
	StateConnecting    State = 1
	StateInRoom        State = 2
	StateReconnecting  State = 3
	StateError         State = 4
)

func (s State) String() string {
	switch s {
	case StateUnprovisioned:
		return "unprovisioned"
	case StateConnecting:
		return "connecting"
	case StateInRoom:
		return "in-room"
	case StateReconnecting:
		return "reconnecting"
	case StateError:
		return "error"
	}
	return "unknown"
}

// Status is the device as the LocalAPI, the CLI and the page report it.
type Status struct {
	State       string `json:"state"`
	Provisioned bool   `json:"provisioned"`
	URL         string `json:"url,omitempty"`
	Room        string `json:"room,omitempty"`
	Identity    string `json:"identity,omitempty"`
	MicMuted    bool   `json:"mic_muted"`
	CameraOff   bool   `json:"camera_off"`    // no camera pixels leave
	SpeakerMute bool   `json:"speaker_muted"` // deaf: the room is not played
	Volume      int    `json:"volume"`        // speaker volume, 0-100
	LED         bool   `json:"led"`
	Attempt     int    `json:"attempt,omitempty"` // failed joins since the last success
	LastError   string `json:"last_error,omitempty"`
	// Participants are the identities of the others in the room.
	Participants []string `json:"participants,omitempty"`
	Joins        int      `json:"joins,omitempty"`   // successful joins since start (>1: it rejoined)
	Resumes      int      `json:"resumes,omitempty"` // signal connections resumed in the current join
	Hal          string   `json:"hal"`
	Encoder      string   `json:"encoder,omitempty"` // the video encoder in use; empty without a camera
	// MicXruns and SpeakerXruns count audio lost at the sound card (overruns, underruns),
	// for boards whose audio devices count them.
	MicXruns     uint64 `json:"mic_xruns,omitempty"`
	SpeakerXruns uint64 `json:"speaker_xruns,omitempty"`
	DeviceID     string `json:"device_id"`
	Name         string `json:"name,omitempty"`      // display name from provisioning
	FleetKey     string `json:"fleet_key,omitempty"` // fingerprint of the trusted fleet key
}

// Provisioning is what an operator gives the device to join its room: either the room
// server URL (ws:// or wss://) and a LiveKit access token naming the room and identity
// (development and fleet-less use), or a signed provisioning token alone.
type Provisioning struct {
	URL   string `json:"url,omitempty"`
	Token string `json:"token,omitempty"`
	// Signed is a provisioning token: a JWS signed by the fleet key (see DESIGN.md).
	Signed string `json:"provisioning_token,omitempty"`
}

// Target is what a mute acts on.
type Target string

const (
	TargetMic     Target = "mic"     // no audio energy leaves; the LED is on
	TargetCamera  Target = "camera"  // no camera pixels leave
	TargetSpeaker Target = "speaker" // deaf: the room is not played
)

// ParseTarget checks a target name from an API request.
func ParseTarget(s string) (Target, error) {
	switch t := Target(s); t {
	case TargetMic, TargetCamera, TargetSpeaker:
		return t, nil
	}
	return "", fmt.Errorf("%w %q (want mic, camera or speaker)", ErrUnknownTarget, s)
}

// ErrUnknownTarget is a mute target the device does not have.
var ErrUnknownTarget = errors.New("device: unknown mute target")

// MaxVolume is the top of the speaker volume scale (0 is silent but not muted).
const MaxVolume = 100

// ErrBadVolume is a volume outside 0..MaxVolume.
var ErrBadVolume = errors.New("device: volume out of range")

// ValidVolume checks a volume from an API request.
func ValidVolume(v int) error {
	if v < 0 || v > MaxVolume {
		return fmt.Errorf("%w: %d (want 0 to %d)", ErrBadVolume, v, MaxVolume)
	}
	return nil
}

// Controller is what the LocalAPI and the page drive; the daemon implements it.
type Controller interface {
	Status(ctx context.Context) Status
	// SetMuted mutes or unmutes the mic, camera or speaker; it persists across restarts.
	SetMuted(ctx context.Context, t Target, muted bool) error
	// SetVolume sets the speaker volume, 0..MaxVolume; it persists across restarts.
	SetVolume(ctx context.Context, volume int) error
	// Press acts on a button exactly as a hardware press and release would.
	Press(ctx context.Context, button string) error
	Provision(ctx context.Context, p Provisioning) error
}

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
	stage func(stage string, st SavedState)
}

// The stage boundaries of a change (testHooks.stage).
const (
	stageApplied = "applied" // recorded and applied; the room not told, nothing saved
	stageTold    = "told"    // the room told; nothing saved
)
