package sim

import (
	"fmt"
	"os"

	"github.com/go-audio/wav"
)

// LoadWAV reads a WAV file of 48 kHz mono 16-bit PCM, the microphone's own format, for
// Config.MicPCM (`roombox run --sim-mic`). Anything else is refused with what it is: the
// simulated board does not resample or mix down.
func LoadWAV(path string) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sim: mic WAV: %w", err)
	}
	defer f.Close()
	d := wav.NewDecoder(f)
	if !d.IsValidFile() {
		return nil, fmt.Errorf("sim: mic WAV %s: not a PCM WAV file", path)
	}
	if d.SampleRate != SampleRate || d.NumChans != 1 || d.BitDepth != 16 {
		return nil, fmt.Errorf("sim: mic WAV %s: %d Hz, %d channel(s), %d-bit; want %d Hz mono 16-bit PCM (e.g. sox IN -r 48000 -c 1 -b 16 OUT.wav)",
			path, d.SampleRate, d.NumChans, d.BitDepth, SampleRate)
	}
	buf, err := d.FullPCMBuffer()
	if err != nil {
		return nil, fmt.Errorf("sim: mic WAV %s: %w", path, err)
	}
	if len(buf.Data) == 0 {
		return nil, fmt.Errorf("sim: mic WAV %s: no samples", path)
	}
	pcm := make([]int16, len(buf.Data))
	for i, v := range buf.Data {
		pcm[i] = int16(v)
	}
	return pcm, nil
}
