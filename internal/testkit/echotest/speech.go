package echotest

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Text is a far-end talker's part: about 17 s of espeak-ng at its default pace, with the
// pauses of ordinary speech.
const Text = "The quarterly numbers are in, and they look better than we expected. " +
	"Sales in the northern region grew by twelve percent, while costs stayed flat. " +
	"We should talk about hiring for the second half of the year, and about the new office. " +
	"Marketing wants a bigger budget for the launch in September."

// Speech is text spoken by espeak-ng in voice, resampled by sox to 48 kHz mono, scaled so
// its voiced part (samples within 30 dB of its peak) has RMS level dbfs. The test skips
// when espeak-ng or sox is missing (make deps installs them).
func Speech(t testing.TB, voice, text string, dbfs float64) []int16 {
	t.Helper()
	for _, bin := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (make deps installs espeak-ng and sox): %v", bin, err)
		}
	}
	wav := filepath.Join(t.TempDir(), "speech.wav")
	if out, err := exec.Command("espeak-ng", "-v", voice, "-s", "165", "-w", wav, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	var stdout, stderr bytes.Buffer
	sox := exec.Command("sox", wav, "-t", "raw", "-r", "48000", "-e", "signed", "-b", "16", "-c", "1", "-")
	sox.Stdout, sox.Stderr = &stdout, &stderr
	if err := sox.Run(); err != nil {
		t.Fatalf("sox: %v: %s", err, stderr.Bytes())
	}
	pcm := make([]int16, stdout.Len()/2)
	if err := binary.Read(&stdout, binary.LittleEndian, pcm); err != nil {
		t.Fatal(err)
	}
	return Scale(pcm, dbfs)
}

// Scale returns pcm scaled so its voiced part (samples within 30 dB of its peak) has RMS
// level dbfs (a full-scale square wave is 0 dBFS).
func Scale(pcm []int16, dbfs float64) []int16 {
	peak := 0.0
	for _, v := range pcm {
		peak = max(peak, math.Abs(float64(v)))
	}
	var sum float64
	var n int
	for _, v := range pcm {
		if a := math.Abs(float64(v)); a > peak/31.6 {
			sum += a * a
			n++
		}
	}
	out := make([]int16, len(pcm))
	if n == 0 {
		return out
	}
	g := 32768 * math.Pow(10, dbfs/20) / math.Sqrt(sum/float64(n))
	for i, v := range pcm {
		out[i] = int16(max(min(math.Round(float64(v)*g), math.MaxInt16), math.MinInt16))
	}
	return out
}

// WriteWAV writes pcm as a 48 kHz mono 16-bit WAV file (what `roombox run --sim-mic` plays).
func WriteWAV(path string, pcm []int16) error {
	var b bytes.Buffer
	data := uint32(2 * len(pcm))
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, 36+data)
	b.WriteString("WAVEfmt ")
	_ = binary.Write(&b, binary.LittleEndian, struct {
		Size                   uint32
		Format, Channels       uint16
		Rate, ByteRate         uint32
		BlockAlign, SampleBits uint16
	}{16, 1, 1, Rate, 2 * Rate, 2, 16})
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, data)
	_ = binary.Write(&b, binary.LittleEndian, pcm)
	return os.WriteFile(path, b.Bytes(), 0o644)
}
