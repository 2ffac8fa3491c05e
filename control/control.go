// Package control is the contract between the appliance and what drives it (the LocalAPI,
// the control page, the CLI): the Controller interface, the Status it reports, and the
// requests it takes with their checks. Standard library and hal's button names only.
package control

import (
	"context"
	"fmt"
	"slices"

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
	// Audio is the microphone's processing in force; nil on a board without a microphone.
	Audio *AudioSettings `json:"audio,omitempty"`
	// Video is the camera's layers; nil on a board without a camera.
	Video     *VideoStatus `json:"video,omitempty"`
	Attempt   int          `json:"attempt,omitempty"` // failed joins since the last success
	LastError string       `json:"last_error,omitempty"`
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
var ErrUnknownTarget = NewInputError("control: unknown mute target")

// MaxVolume is the top of the speaker volume scale (0 is silent but not muted).
const MaxVolume = 100

// ErrBadVolume is a volume outside 0..MaxVolume.
var ErrBadVolume = NewInputError("control: volume out of range")

// ValidVolume checks a volume from an API request.
func ValidVolume(v int) error {
	if v < 0 || v > MaxVolume {
		return fmt.Errorf("%w: %d (want 0 to %d)", ErrBadVolume, v, MaxVolume)
	}
	return nil
}

// Controller is what the LocalAPI and the page drive; the appliance implements it.
type Controller interface {
	Status(ctx context.Context) Status
	// SetMuted mutes or unmutes the mic, camera or speaker; it persists across restarts.
	SetMuted(ctx context.Context, t Target, muted bool) error
	// SetVolume sets the speaker volume, 0..MaxVolume; it persists across restarts.
	SetVolume(ctx context.Context, volume int) error
	// SetAudio changes the microphone's processing (the fields p gives); it persists
	// across restarts. Status reports the settings in force.
	SetAudio(ctx context.Context, p AudioPatch) error
	// SetVideo changes the camera's capture (the fields p gives) from its next frame, every
	// layer starting with an IDR; it persists across restarts. Status reports the settings
	// and the camera's mode in force.
	SetVideo(ctx context.Context, p VideoPatch) error
	// Press acts on a button exactly as a hardware press and release would.
	Press(ctx context.Context, button string) error
	Provision(ctx context.Context, p Provisioning) error
}

// ErrUnknownButton is a button name the board does not have.
var ErrUnknownButton = NewInputError("control: unknown button")

// Buttons lists the button names Press accepts.
var Buttons = []string{hal.ButtonMic, hal.ButtonCamera, hal.ButtonSpeaker, hal.ButtonVolumeUp, hal.ButtonVolumeDown}

// ValidButton returns an error matching ErrUnknownButton unless name is in Buttons.
func ValidButton(name string) error {
	if name == "" {
		return fmt.Errorf("%w: no button named (want one of %v)", ErrUnknownButton, Buttons)
	}
	if !slices.Contains(Buttons, name) {
		return fmt.Errorf("%w %q (want one of %v)", ErrUnknownButton, name, Buttons)
	}
	return nil
}

// InputError is an error in what a caller asked for (an unknown target, a volume out of
// range, an unknown button, bad provisioning): the APIs answer it 400, the CLI names it.
// Sentinels are InputErrors, compared with errors.Is.
type InputError struct{ msg string }

// NewInputError returns an InputError with message msg.
func NewInputError(msg string) *InputError { return &InputError{msg: msg} }

func (e *InputError) Error() string { return e.msg }

// BadInput marks the error as the caller's fault.
func (e *InputError) BadInput() bool { return true }
