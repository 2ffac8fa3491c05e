//go:build !linux || !cgo

package alsa

func openALSA(string, bool, int) (pcm, Params, error) { return nil, Params{}, ErrNoALSA }

// Devices returns ErrNoALSA: this build has no alsa-lib.
func Devices() ([]Device, error) { return nil, ErrNoALSA }
