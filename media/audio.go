package media

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/pion/webrtc/v4/pkg/media"

	"roombox/hal"
)

// AudioEncoder compresses one 20 ms frame; OpusEncoder is one. The packet it returns is
// valid until its next call.
type AudioEncoder interface {
	Encode(pcm []int16) ([]byte, error)
}

// Audio reads a microphone, groups its periods into 20 ms frames, runs them through its
// stages, gates them with the mute, encodes and writes samples.
type Audio struct {
	mic    hal.AudioIn
	stages []AudioStage
	enc    AudioEncoder
	out    SampleWriter
	muted  atomic.Bool
	pcm    []int16 // one 20 ms frame
	period int     // samples in one microphone period
}

// NewAudio returns an unmuted audio pipeline. The microphone's periods must divide 20 ms;
// with stages, the microphone must give 48 kHz mono (what the stages take).
func NewAudio(mic hal.AudioIn, enc AudioEncoder, out SampleWriter, stages ...AudioStage) (*Audio, error) {
	f := mic.Format()
	frame := f.SampleRate / 50 * f.Channels
	period := f.FrameSamples * f.Channels
	if f.SampleRate%50 != 0 || period <= 0 || frame%period != 0 {
		return nil, fmt.Errorf("media: audio: %d-sample periods at %d Hz do not divide 20 ms", f.FrameSamples, f.SampleRate)
	}
	if len(stages) > 0 && (f.SampleRate != OpusSampleRate || f.Channels != 1) {
		return nil, fmt.Errorf("media: audio: processing stages take %d Hz mono; the microphone gives %d Hz x %d channels",
			OpusSampleRate, f.SampleRate, f.Channels)
	}
	return &Audio{mic: mic, stages: stages, enc: enc, out: out, pcm: make([]int16, frame), period: period}, nil
}

// SetMuted mutes or unmutes. While muted every frame is replaced with silence before it
// reaches the encoder, so no captured audio energy leaves; the flag is read once per
// frame, so a change applies to the next frame encoded (at most 20 ms of audio captured
// before the change may still follow it).
func (a *Audio) SetMuted(muted bool) { a.muted.Store(muted) }

// Muted reports whether the gate is closed: the next frame encoded is silence.
func (a *Audio) Muted() bool { return a.muted.Load() }

// Run captures, encodes and writes 20 ms samples until ctx ends (then it returns nil) or
// the microphone, encoder or writer fails.
func (a *Audio) Run(ctx context.Context) error {
	for {
		if err := a.next(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("media: audio: %w", err)
		}
	}
}

// next captures, encodes and writes one 20 ms frame.
func (a *Audio) next(ctx context.Context) error {
	for off := 0; off < len(a.pcm); off += a.period {
		if err := a.mic.ReadPCM(ctx, a.pcm[off:off+a.period]); err != nil {
			return err
		}
	}
	for _, st := range a.stages {
		for off := 0; off < len(a.pcm); off += StageSamples {
			if err := st.ProcessCapture(a.pcm[off : off+StageSamples]); err != nil {
				return err
			}
		}
	}
	if a.muted.Load() {
		clear(a.pcm)
	}
	pkt, err := a.enc.Encode(a.pcm)
	if err != nil {
		return err
	}
	if err := a.out.WriteSample(media.Sample{Data: pkt, Duration: OpusFrameDuration}); err != nil {
		return fmt.Errorf("write sample: %w", err)
	}
	return nil
}
