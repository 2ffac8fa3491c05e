package media

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media"

	"roombox/hal"
	"roombox/hal/sim"
)

// halver is a stage that records the level of what it is given and halves it (-6 dB).
type halver struct {
	frames int
	loud   int // frames that carried the tone
	sizes  map[int]bool
}

func (h *halver) ProcessCapture(frame []int16) error {
	h.frames++
	h.sizes[len(frame)] = true
	if rmsDBFS(frame) > -30 {
		h.loud++
	}
	for i := range frame {
		frame[i] /= 2
	}
	return nil
}

// Stages get every 10 ms of the microphone before the mute gate, muted or not (a canceller
// keeps adapting), and what they make is what is encoded, unless the mic is muted.
func TestAudioStagesRunBeforeTheGate(t *testing.T) {
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc, err := NewOpusEncoder(32_000)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := NewOpusEncoder(32_000)
	if err != nil {
		t.Fatal(err)
	}
	h := &halver{sizes: map[int]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	out := &hookWriter{}
	a, err := NewAudio(b.Mic, enc, out, h)
	if err != nil {
		t.Fatal(err)
	}
	out.hook = func(i int, _ media.Sample) {
		switch i {
		case 49:
			a.SetMuted(true)
		case 99:
			cancel()
		}
	}
	runUntilDone(t, a.Run, ctx)
	if h.frames != 200 || !maps1(h.sizes, StageSamples) {
		t.Fatalf("stage saw %d frames of sizes %v, want 200 of %d", h.frames, h.sizes, StageSamples)
	}
	if h.loud < 190 {
		t.Fatalf("stage saw the tone in %d of 200 frames: muting must not starve it", h.loud)
	}
	// The same tone, unprocessed, for the level the stage halved.
	b2 := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	ctx2, cancel2 := context.WithCancel(context.Background())
	plain := &hookWriter{hook: func(i int, _ media.Sample) {
		if i == 49 {
			cancel2()
		}
	}}
	a2, err := NewAudio(b2.Mic, ref, plain)
	if err != nil {
		t.Fatal(err)
	}
	runUntilDone(t, a2.Run, ctx2)
	got, want := decodeAll(t, out.samples), decodeAll(t, plain.samples)
	processed, unprocessed := rmsDBFS(slices.Concat(got[10:50]...)), rmsDBFS(slices.Concat(want[10:50]...))
	if d := unprocessed - processed; math.Abs(d-6.02) > 0.5 {
		t.Fatalf("encoded %.1f dBFS with the stage, %.1f without: want the stage's -6 dB", processed, unprocessed)
	}
	if db := rmsDBFS(slices.Concat(got[55:]...)); db > -90 {
		t.Fatalf("muted frames at %.1f dBFS after the stage", db)
	}
}

func maps1(m map[int]bool, k int) bool { return len(m) == 1 && m[k] }

func TestAudioStagesNeed48kMono(t *testing.T) {
	for _, f := range []hal.AudioFormat{{SampleRate: 16000, Channels: 1, FrameSamples: 160}, {SampleRate: 48000, Channels: 2, FrameSamples: 480}} {
		if _, err := NewAudio(fakeMic{format: f}, nil, nil, &halver{}); err == nil {
			t.Errorf("stages accepted with a %+v microphone", f)
		}
	}
}

func TestAudioStageFrameAllocs(t *testing.T) {
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc, err := NewOpusEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAudio(b.Mic, enc, discard{}, &halver{sizes: map[int]bool{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		if err := a.next(ctx); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per frame with a stage", n)
	}
}

// The far end's reference is what the speaker plays: the mono mix after volume, silence
// when deaf.
func TestPlaybackFarEndIsWhatIsPlayed(t *testing.T) {
	pb := newMemPlayback(t, 2)
	rec := &farRecorder{}
	pb.SetFarEnd(rec)
	f := newFeed(t, pb, 440)
	pb.SetVolume(50)
	f.periods(4) // the gain has ramped
	left := make([]int16, len(pb.farBuf))
	for i := range left {
		left[i] = pb.buf[2*i]
	}
	if !slices.Equal(pb.farBuf, left) || toneDBFS(pb.farBuf, 440) > sentToneDBFS-20 || toneDBFS(pb.farBuf, 440) < sentToneDBFS-30 {
		t.Fatalf("reference at %.1f dBFS, equal to the speaker's channel: %v; want the -25 dB volume applied, and equal",
			toneDBFS(pb.farBuf, 440), slices.Equal(pb.farBuf, left))
	}
	pb.SetMuted(true)
	f.periods(2)
	if slices.ContainsFunc(pb.farBuf, func(v int16) bool { return v != 0 }) {
		t.Fatalf("reference at %.1f dBFS with the speaker deaf, want silence", rmsDBFS(pb.farBuf))
	}
}

// Run hands every period to the far end, with the speaker's delay.
func TestPlaybackRunFeedsFarEnd(t *testing.T) {
	out := &delayOut{memOut: memOut{format: hal.AudioFormat{SampleRate: OpusSampleRate, Channels: 1, FrameSamples: 480}}, delay: 30 * time.Millisecond}
	pb, err := NewPlayback(out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rec := &farRecorder{stopAt: 10, stop: cancel}
	pb.SetFarEnd(rec)
	runUntilDone(t, pb.Run, ctx)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.periods < 10 || rec.samples != rec.periods*480 || rec.delay != 30*time.Millisecond {
		t.Fatalf("far end got %d periods, %d samples, delay %v; want >= 10, 480 each, 30ms", rec.periods, rec.samples, rec.delay)
	}
}

type delayOut struct {
	memOut
	delay time.Duration
}

func (o *delayOut) Delay() time.Duration { return o.delay }

// WritePCM takes a period at once, as a speaker with room in its buffer does, until ctx ends.
func (o *delayOut) WritePCM(ctx context.Context, buf []int16) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return o.memOut.WritePCM(ctx, buf)
}

type farRecorder struct {
	mu      sync.Mutex
	periods int
	samples int
	delay   time.Duration
	stopAt  int
	stop    func()
}

func (r *farRecorder) Played(pcm []int16, delay time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.periods++
	r.samples += len(pcm)
	r.delay = delay
	if r.stop != nil && r.periods == r.stopAt {
		r.stop()
	}
}
