package device

import (
	"context"
	"log/slog"
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
	LED         bool   `json:"led"`
	Attempt     int    `json:"attempt,omitempty"` // failed joins since the last success
	LastError   string `json:"last_error,omitempty"`
	// Participants are the identities of the others in the room.
	Participants []string `json:"participants,omitempty"`
	Joins        int      `json:"joins,omitempty"`   // successful joins since start (>1: it rejoined)
	Resumes      int      `json:"resumes,omitempty"` // signal connections resumed in the current join
	Hal          string   `json:"hal"`
}

// Provisioning is what an operator gives the device to join its room: the room server URL
// (ws:// or wss://) and a LiveKit access token naming the room and identity.
type Provisioning struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// Controller is what the LocalAPI and the page drive; the daemon implements it.
type Controller interface {
	Status(ctx context.Context) Status
	SetMicMuted(ctx context.Context, muted bool) error
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
}
