package sim_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-audio/audio"
	"github.com/go-audio/wav"

	"roombox/hal/sim"
)

// writeWAV writes pcm as a PCM WAV file of the given rate, channels and depth.
func writeWAV(t *testing.T, rate, channels, depth int, pcm []int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "talk.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := wav.NewEncoder(f, rate, depth, channels, 1)
	if err := e.Write(&audio.IntBuffer{Data: pcm, SourceBitDepth: depth,
		Format: &audio.Format{NumChannels: channels, SampleRate: rate}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// The microphone plays a recording in a loop: sample after sample, from its start again at
// its end, across periods.
func TestMicPlaysWAVInALoop(t *testing.T) {
	rec := make([]int, 700) // not a whole number of periods
	for i := range rec {
		rec[i] = i*37%20000 - 10000
	}
	pcm, err := sim.LoadWAV(writeWAV(t, sim.SampleRate, 1, 16, rec))
	if err != nil {
		t.Fatal(err)
	}
	b, err := sim.New(sim.Config{Clock: sim.NewInstantClock(t0), MicPCM: pcm})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int16, 0, 3*sim.PeriodSamples)
	buf := make([]int16, sim.PeriodSamples)
	for range 3 {
		if err := b.Mic.ReadPCM(context.Background(), buf); err != nil {
			t.Fatal(err)
		}
		got = append(got, buf...)
	}
	for i, v := range got {
		if want := int16(rec[i%len(rec)]); v != want {
			t.Fatalf("sample %d = %d, want %d (the recording, looped)", i, v, want)
		}
	}
}

func TestLoadWAVRefusesOtherFormats(t *testing.T) {
	notWAV := filepath.Join(t.TempDir(), "notes.wav")
	if err := os.WriteFile(notWAV, []byte("meeting notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path, want string
	}{
		{"44.1 kHz", writeWAV(t, 44100, 1, 16, []int{1, 2, 3}), "44100 Hz, 1 channel(s), 16-bit; want 48000 Hz mono 16-bit"},
		{"stereo", writeWAV(t, sim.SampleRate, 2, 16, []int{1, 2, 3, 4}), "2 channel(s)"},
		{"8-bit", writeWAV(t, sim.SampleRate, 1, 8, []int{1, 2, 3}), "8-bit"},
		{"not a WAV", notWAV, "not a PCM WAV file"},
		{"missing", filepath.Join(t.TempDir(), "gone.wav"), "no such file"},
	} {
		if _, err := sim.LoadWAV(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: LoadWAV = %v, want an error with %q", tt.name, err, tt.want)
		}
	}
	if _, err := sim.New(sim.Config{MicPCM: []int16{}}); err == nil {
		t.Error("an empty recording accepted")
	}
}
