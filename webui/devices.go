package webui

import (
	"fmt"
	"sync"

	"roombox/control"
	"roombox/hal"
)

// MediaDevice is a camera, microphone or speaker the control page can choose.
type MediaDevice struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Selected bool   `json:"selected"`
}

// MediaDevices lists the board's media devices by kind.
type MediaDevices struct {
	Cameras     []MediaDevice `json:"cameras"`
	Microphones []MediaDevice `json:"microphones"`
	Speakers    []MediaDevice `json:"speakers"`
}

// Device kinds of POST /api/devices.
const (
	KindCamera     = "camera"
	KindMicrophone = "microphone"
	KindSpeaker    = "speaker"
)

var (
	// ErrUnknownDeviceKind is a kind other than camera, microphone or speaker.
	ErrUnknownDeviceKind = control.NewInputError("webui: unknown device kind")
	// ErrUnknownDevice is a device id the board does not list.
	ErrUnknownDevice = control.NewInputError("webui: unknown device")
)

// DeviceChooser lists and selects the media devices. A board with several cameras or sound
// cards implements it over its enumeration; boardDevices covers boards with one of each.
type DeviceChooser interface {
	Devices() MediaDevices
	Select(kind, id string) error
}

// BoardDevices lists the one camera, microphone and speaker a board has (those present).
type boardDevices struct {
	mu   sync.Mutex
	list MediaDevices
}

func BoardDevices(b *hal.Board) *boardDevices {
	one := func(present bool, kind string) []MediaDevice {
		if !present {
			return []MediaDevice{}
		}
		return []MediaDevice{{ID: b.Name + "-" + kind, Name: b.Name + " " + kind, Selected: true}}
	}
	return &boardDevices{list: MediaDevices{
		Cameras:     one(b.Camera != nil, KindCamera),
		Microphones: one(b.Mic != nil, KindMicrophone),
		Speakers:    one(b.Speaker != nil, KindSpeaker),
	}}
}

func (d *boardDevices) Devices() MediaDevices {
	d.mu.Lock()
	defer d.mu.Unlock()
	return MediaDevices{
		Cameras:     append([]MediaDevice{}, d.list.Cameras...),
		Microphones: append([]MediaDevice{}, d.list.Microphones...),
		Speakers:    append([]MediaDevice{}, d.list.Speakers...),
	}
}

// Select marks id as the selected device of its kind.
func (d *boardDevices) Select(kind, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var list []MediaDevice
	switch kind {
	case KindCamera:
		list = d.list.Cameras
	case KindMicrophone:
		list = d.list.Microphones
	case KindSpeaker:
		list = d.list.Speakers
	default:
		return fmt.Errorf("%w %q (want camera, microphone or speaker)", ErrUnknownDeviceKind, kind)
	}
	found := false
	for _, dev := range list {
		found = found || dev.ID == id
	}
	if !found {
		return fmt.Errorf("%w: no %s with id %q", ErrUnknownDevice, kind, id)
	}
	for i := range list {
		list[i].Selected = list[i].ID == id
	}
	return nil
}
