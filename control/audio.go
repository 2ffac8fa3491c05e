package control

import (
	"fmt"
	"log/slog"
)

// Noise suppression levels, as the APIs name them.
const (
	NoiseOff      = "off"
	NoiseLow      = "low"
	NoiseModerate = "moderate"
	NoiseHigh     = "high"
	NoiseVeryHigh = "very-high"
)

// NoiseLevels lists the noise suppression levels, weakest first.
var NoiseLevels = []string{NoiseOff, NoiseLow, NoiseModerate, NoiseHigh, NoiseVeryHigh}

// Input gain bounds, dB (what WebRTC's AudioProcessing takes).
const (
	MinInputGainDB = -20
	MaxInputGainDB = 30
)

// SensitivityOff is the input sensitivity that sends everything: a level of -127 dBov is
// digital silence.
const SensitivityOff = 127

// AudioSettings is the microphone's processing, the same on the page, the LocalAPI, the CLI
// and in a provisioning token's media claims.
type AudioSettings struct {
	// EchoCancellation removes what the speaker plays from what the microphone hears; off
	// for a microphone that cancels echo itself (two cancellers in series hurt).
	EchoCancellation bool   `json:"echo_cancellation"`
	NoiseSuppression string `json:"noise_suppression"` // one of NoiseLevels
	AutoGain         bool   `json:"auto_gain"`         // level the talker
	// InputGainDB is applied to the microphone first: MinInputGainDB..MaxInputGainDB.
	InputGainDB float64 `json:"input_gain_db"`
	// InputSensitivity is the quietest level sent, in -dBov (0..SensitivityOff): quieter
	// audio goes as silence (as DTX with DTX on). SensitivityOff sends everything.
	InputSensitivity int `json:"input_sensitivity"`
	// DTX lets the Opus encoder send almost nothing during silence.
	DTX bool `json:"dtx"`
}

// DefaultAudio is what a room box with a plain microphone wants: everything on, noise
// suppression high, no gate.
var DefaultAudio = AudioSettings{EchoCancellation: true, NoiseSuppression: NoiseHigh, AutoGain: true,
	InputSensitivity: SensitivityOff}

// AudioPatch changes some audio settings: the fields given, the others kept. It is what the
// APIs take, what a provisioning token carries, and what the device stores of settings made
// on it (the defaults stay the build's).
type AudioPatch struct {
	EchoCancellation *bool    `json:"echo_cancellation,omitempty"`
	NoiseSuppression *string  `json:"noise_suppression,omitempty"`
	AutoGain         *bool    `json:"auto_gain,omitempty"`
	InputGainDB      *float64 `json:"input_gain_db,omitempty"`
	InputSensitivity *int     `json:"input_sensitivity,omitempty"`
	DTX              *bool    `json:"dtx,omitempty"`
}

// ErrBadAudio is an audio setting out of its range.
var ErrBadAudio = NewInputError("control: bad audio setting")

// IsZero reports whether p changes nothing.
func (p AudioPatch) IsZero() bool { return p == AudioPatch{} }

// Check reports the first field of p out of its range, naming it and the range.
func (p AudioPatch) Check() error {
	switch {
	case p.NoiseSuppression != nil && NoiseIndex(*p.NoiseSuppression) < 0:
		return fmt.Errorf("%w: noise_suppression %q (want one of %v)", ErrBadAudio, *p.NoiseSuppression, NoiseLevels)
	case p.InputGainDB != nil && !(*p.InputGainDB >= MinInputGainDB && *p.InputGainDB <= MaxInputGainDB): // NaN too
		return fmt.Errorf("%w: input_gain_db %g (want %d to %d)", ErrBadAudio, *p.InputGainDB, MinInputGainDB, MaxInputGainDB)
	case p.InputSensitivity != nil && (*p.InputSensitivity < 0 || *p.InputSensitivity > SensitivityOff):
		return fmt.Errorf("%w: input_sensitivity %d (want 0 to %d)", ErrBadAudio, *p.InputSensitivity, SensitivityOff)
	}
	return nil
}

// Apply returns s with p's fields; p must have passed Check.
func (p AudioPatch) Apply(s AudioSettings) AudioSettings {
	set(&s.EchoCancellation, p.EchoCancellation)
	set(&s.NoiseSuppression, p.NoiseSuppression)
	set(&s.AutoGain, p.AutoGain)
	set(&s.InputGainDB, p.InputGainDB)
	set(&s.InputSensitivity, p.InputSensitivity)
	set(&s.DTX, p.DTX)
	return s
}

// Merge returns p with q's fields on top: q is the later change. The result shares no
// pointer with either.
func (p AudioPatch) Merge(q AudioPatch) AudioPatch {
	return AudioPatch{
		EchoCancellation: later(p.EchoCancellation, q.EchoCancellation),
		NoiseSuppression: later(p.NoiseSuppression, q.NoiseSuppression),
		AutoGain:         later(p.AutoGain, q.AutoGain),
		InputGainDB:      later(p.InputGainDB, q.InputGainDB),
		InputSensitivity: later(p.InputSensitivity, q.InputSensitivity),
		DTX:              later(p.DTX, q.DTX),
	}
}

// Same reports whether p and q set the same fields to the same values.
func (p AudioPatch) Same(q AudioPatch) bool {
	return same(p.EchoCancellation, q.EchoCancellation) && same(p.NoiseSuppression, q.NoiseSuppression) &&
		same(p.AutoGain, q.AutoGain) && same(p.InputGainDB, q.InputGainDB) &&
		same(p.InputSensitivity, q.InputSensitivity) && same(p.DTX, q.DTX)
}

// LogValue is the fields p sets, by their JSON names (slog.LogValuer): logs say what changed.
func (p AudioPatch) LogValue() slog.Value {
	return slog.GroupValue(attr("echo_cancellation", p.EchoCancellation), attr("noise_suppression", p.NoiseSuppression),
		attr("auto_gain", p.AutoGain), attr("input_gain_db", p.InputGainDB), attr("input_sensitivity", p.InputSensitivity),
		attr("dtx", p.DTX))
}

// attr is key=*v, or the empty attribute (which handlers leave out) when v is nil.
func attr[T any](key string, v *T) slog.Attr {
	if v == nil {
		return slog.Attr{}
	}
	return slog.Any(key, *v)
}

// NoiseIndex is the position of a noise suppression level in NoiseLevels (0 is off), -1 if
// it is none of them.
func NoiseIndex(level string) int {
	for i, l := range NoiseLevels {
		if l == level {
			return i
		}
	}
	return -1
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func later[T any](a, b *T) *T {
	if b == nil {
		b = a
	}
	if b == nil {
		return nil
	}
	v := *b
	return &v
}

func same[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
