package media

import (
	"context"
	"math"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4/pkg/media"

	"roombox/hal/sim"
)

func TestLevel(t *testing.T) {
	sine := func(dbfs float64) []int16 {
		pcm := make([]int16, OpusFrameSamples)
		a := 32767 * math.Pow(10, dbfs/20)
		for i := range pcm {
			pcm[i] = int16(a * math.Sin(2*math.Pi*1000*float64(i)/OpusSampleRate))
		}
		return pcm
	}
	square := make([]int16, OpusFrameSamples)
	for i := range square {
		square[i] = 32767
		if i%2 == 1 {
			square[i] = -32767
		}
	}
	for _, tc := range []struct {
		name string
		pcm  []int16
		want uint8
	}{
		{"silence", make([]int16, OpusFrameSamples), SilentLevel},
		{"full-scale square", square, 0},
		{"sine peaking at -20 dBFS", sine(-20), 23}, // RMS is 3 dB below the peak
		{"sine peaking at -60 dBFS", sine(-60), 63},
		{"one LSB in a frame", append(make([]int16, OpusFrameSamples-1), 1), 120},
		{"nothing", nil, SilentLevel},
	} {
		if got := Level(tc.pcm); got != tc.want {
			t.Errorf("%s: level %d, want %d", tc.name, got, tc.want)
		}
	}
}

// levelWriter keeps what a LevelWriter is given.
type levelWriter struct {
	sent []levelSample
	hook func(i int)
}

type levelSample struct {
	level   uint8
	voice   bool
	dropped uint16
	rms     float64 // of the packet decoded, dBFS
}

func (w *levelWriter) WriteSample(media.Sample) error {
	panic("the pipeline wrote without a level to a LevelWriter")
}

func (w *levelWriter) WriteLevelSample(s media.Sample, level uint8, voice bool) error {
	w.sent = append(w.sent, levelSample{level: level, voice: voice, dropped: s.PrevDroppedPackets, rms: decodedDBFS(s.Data)})
	if w.hook != nil {
		w.hook(len(w.sent) - 1)
	}
	return nil
}

var levelDecoder *OpusDecoder

// decodedDBFS decodes an Opus packet with one decoder kept across calls (as a receiver
// does) and returns its RMS in dBFS.
func decodedDBFS(pkt []byte) float64 {
	pcm, err := levelDecoder.Decode(pkt)
	if err != nil {
		panic(err)
	}
	return rmsDBFS(pcm)
}

// bursts is a microphone that says a 440 Hz tone at -20 dBFS for loud frames, then at
// -70 dBFS for quiet ones, round and round.
func bursts(loud, quiet int) []int16 {
	pcm := make([]int16, (loud+quiet)*OpusFrameSamples)
	for i := range pcm {
		a := 32767 * math.Pow(10, -20.0/20)
		if i >= loud*OpusFrameSamples {
			a = 32767 * math.Pow(10, -70.0/20)
		}
		pcm[i] = int16(a * math.Sin(2*math.Pi*440*float64(i)/OpusSampleRate))
	}
	return pcm
}

// runFrames runs a pipeline on the sim microphone playing pcm until n samples are written.
func runFrames(t *testing.T, pcm []int16, n int, setup func(a *Audio, w *levelWriter)) []levelSample {
	t.Helper()
	var err error
	if levelDecoder, err = NewOpusDecoder(); err != nil {
		t.Fatal(err)
	}
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0), MicPCM: pcm})
	enc, err := NewOpusEncoder(32_000)
	if err != nil {
		t.Fatal(err)
	}
	w := &levelWriter{}
	a, err := NewAudio(b.Mic, enc, w)
	if err != nil {
		t.Fatal(err)
	}
	setup(a, w)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook := w.hook
	w.hook = func(i int) {
		if hook != nil {
			hook(i)
		}
		if i == n-1 {
			cancel()
		}
	}
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return w.sent
}

// Every sample goes with its level; with the sensitivity at -50 dBov the quiet frames are
// sent for the hangover after the loud ones, then as silence; muted, everything is silence
// and not speaking.
func TestAudioLevelAndSensitivity(t *testing.T) {
	const loud, quiet = 25, 50 // 0.5 s, 1 s
	hangover := int(SensitivityHangover / OpusFrameDuration)
	sent := runFrames(t, bursts(loud, quiet), 2*(loud+quiet), func(a *Audio, w *levelWriter) {
		if err := a.SetSensitivity(50); err != nil {
			t.Fatal(err)
		}
	})
	for i, s := range sent {
		phase := i % (loud + quiet)
		switch {
		case phase < loud:
			if s.level < 22 || s.level > 24 || !s.voice {
				t.Fatalf("frame %d (loud): level %d voice %v, want 23 and voice", i, s.level, s.voice)
			}
		case phase < loud+hangover:
			if s.level < 72 || s.level > 74 || !s.voice || s.rms < -80 {
				t.Fatalf("frame %d (quiet, in the hangover): level %d voice %v, decoded %.1f dBFS; want 73, voice, sent", i, s.level, s.voice, s.rms)
			}
		case phase > loud+hangover: // the first frame after may hold the codec's tail
			if s.level != SilentLevel || s.voice || s.rms > -90 {
				t.Fatalf("frame %d (quiet, gated): level %d voice %v, decoded %.1f dBFS; want silence", i, s.level, s.voice, s.rms)
			}
		}
	}
	if err := (&Audio{}).SetSensitivity(128); err == nil {
		t.Error("sensitivity 128 accepted")
	}

	sent = runFrames(t, bursts(loud, quiet), loud+quiet, func(a *Audio, _ *levelWriter) { a.SetMuted(true) })
	for i, s := range sent {
		if s.level != SilentLevel || s.voice {
			t.Fatalf("muted frame %d: level %d voice %v, want silence and no voice", i, s.level, s.voice)
		}
	}
}

// The voice flag is a voice-detecting stage's when there is one: here one that hears voice
// in every other 20 ms frame.
type everyOther struct{ n int }

func (e *everyOther) ProcessCapture([]int16) error { e.n++; return nil }
func (e *everyOther) Last() (uint8, bool)          { return 0, (e.n+1)/2%2 == 0 }

func TestAudioVoiceFromDetector(t *testing.T) {
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc, err := NewOpusEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	var err2 error
	if levelDecoder, err2 = NewOpusDecoder(); err2 != nil {
		t.Fatal(err2)
	}
	w := &levelWriter{}
	a, err := NewAudio(b.Mic, enc, w, &everyOther{})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := a.next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range w.sent {
		if s.voice != (i%2 == 1) || s.level == SilentLevel {
			t.Errorf("frame %d: voice %v level %d; want the detector's verdict (%v) and the tone's level", i, s.voice, s.level, i%2 == 1)
		}
		if l, v := a.Meter(); i == len(w.sent)-1 && (l != s.level || v != s.voice) {
			t.Errorf("meter %d %v, want the last frame's %d %v", l, v, s.level, s.voice)
		}
	}
}

// With DTX the encoder's packets for silence are not sent; the next one sent says how many
// frames were skipped, so the receiver's timeline holds.
func TestAudioDTX(t *testing.T) {
	pcm := append(make([]int16, 50*OpusFrameSamples), bursts(25, 0)...) // 1 s of silence, 0.5 s of tone
	sent := runFrames(t, pcm, 40, func(a *Audio, _ *levelWriter) { a.SetDTX(true) })
	frames, skipped := 0, 0
	for _, s := range sent {
		frames += 1 + int(s.dropped)
		skipped += int(s.dropped)
	}
	if skipped < 25 {
		t.Errorf("%d of the first %d frames skipped, want most of the 50 silent ones", skipped, frames)
	}
	t.Logf("DTX: %d samples sent for %d frames (%d skipped)", len(sent), frames, skipped)
}

// tuneRecorder is an encoder that records its tuning.
type tuneRecorder struct {
	*OpusEncoder
	loss []int
	dtx  []bool
}

func (r *tuneRecorder) SetDTX(on bool) error {
	r.dtx = append(r.dtx, on)
	return r.OpusEncoder.SetDTX(on)
}
func (r *tuneRecorder) SetPacketLoss(pct int) error { r.loss = append(r.loss, pct); return nil }

// Receiver reports' loss reaches the encoder smoothed, capped at 30 %, and back to 0 when
// the loss stops.
func TestAudioLossToFEC(t *testing.T) {
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc, err := NewOpusEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	rec := &tuneRecorder{OpusEncoder: enc}
	a, err := NewAudio(b.Mic, rec, discard{})
	if err != nil {
		t.Fatal(err)
	}
	report := func(fractionLost uint8) {
		a.HandleRTCP([]rtcp.Packet{&rtcp.SenderReport{}, &rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{{FractionLost: fractionLost}}}})
		if err := a.next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		report(64) // 25 %
	}
	if last := rec.loss[len(rec.loss)-1]; last != 25 {
		t.Errorf("after 20 reports of 25 %% loss the encoder expects %d %% (%v)", last, rec.loss)
	}
	for i := 1; i < len(rec.loss); i++ {
		if rec.loss[i] <= rec.loss[i-1] {
			t.Fatalf("loss did not climb steadily: %v", rec.loss)
		}
	}
	for range 20 {
		report(255)
	}
	if last := rec.loss[len(rec.loss)-1]; last != maxExpectedLoss {
		t.Errorf("with ~100 %% loss the encoder expects %d %%, want the cap %d", last, maxExpectedLoss)
	}
	for range 40 {
		report(0)
	}
	if last := rec.loss[len(rec.loss)-1]; last != 0 {
		t.Errorf("40 reports after the loss stopped the encoder still expects %d %%", last)
	}
	if len(rec.dtx) != 0 {
		t.Errorf("DTX changed without being asked: %v", rec.dtx)
	}
}

type discardLevels struct{}

func (discardLevels) WriteSample(media.Sample) error                   { return nil }
func (discardLevels) WriteLevelSample(media.Sample, uint8, bool) error { return nil }

func TestAudioLevelFrameAllocs(t *testing.T) {
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc, err := NewOpusEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAudio(b.Mic, enc, discardLevels{}, &everyOther{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetSensitivity(60); err != nil {
		t.Fatal(err)
	}
	a.SetDTX(true)
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		if err := a.next(ctx); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per frame with levels, sensitivity and DTX", n)
	}
}
