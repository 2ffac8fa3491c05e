package media

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4/pkg/media"

	"roombox/hal"
)

// AudioEncoder compresses one 20 ms frame; OpusEncoder is one. The packet it returns is
// valid until its next call.
type AudioEncoder interface {
	Encode(pcm []int16) ([]byte, error)
}

// EncoderTuner is an encoder whose discontinuous transmission and expected packet loss
// (for its in-band FEC) can change between frames; OpusEncoder is one.
type EncoderTuner interface {
	SetDTX(on bool) error
	SetPacketLoss(percent int) error
}

// dtxPacket is the longest packet an encoder in DTX makes for a frame it does not need
// sent: libopus's TOC-only packets, which WebRTC does not transmit either.
const dtxPacket = 2

// Audio reads a microphone, groups its periods into 20 ms frames, runs them through its
// stages, measures them, gates them with the mute and the input sensitivity, encodes and
// writes samples (with their level when the writer takes it: LevelWriter).
type Audio struct {
	mic    hal.AudioIn
	stages []AudioStage
	voice  []VoiceDetector // the stages that detect speech
	enc    AudioEncoder
	tuner  EncoderTuner // enc's tuning, nil if it has none
	out    SampleWriter
	lw     LevelWriter // out as a LevelWriter, nil if it is not one

	muted       atomic.Bool
	sensitivity atomic.Int32  // the gate's threshold, -dBov; SilentLevel sends everything
	dtx         atomic.Bool   // asked for
	loss        atomic.Int32  // expected packet loss from receiver reports, percent x lossScale
	meter       atomic.Uint32 // level | voice<<8 of the last frame encoded

	// Owned by Run's goroutine.
	pcm     []int16 // one 20 ms frame
	period  int     // samples in one microphone period
	open    time.Duration
	tuned   tuning
	dropped uint16 // DTX frames not sent since the last sample written
}

// tuning is what the encoder was last told.
type tuning struct {
	dtx  bool
	loss int32
}

// NewAudio returns an unmuted audio pipeline sending everything (no sensitivity gate),
// without DTX. The microphone's periods must divide 20 ms; with stages, the microphone must
// give 48 kHz mono (what the stages take).
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
	a := &Audio{mic: mic, stages: stages, enc: enc, out: out, pcm: make([]int16, frame), period: period}
	for _, st := range stages {
		if d, ok := st.(VoiceDetector); ok {
			a.voice = append(a.voice, d)
		}
	}
	a.tuner, _ = enc.(EncoderTuner)
	a.lw, _ = out.(LevelWriter)
	a.sensitivity.Store(SilentLevel)
	a.meter.Store(SilentLevel)
	return a, nil
}

// SetMuted mutes or unmutes. While muted every frame is replaced with silence before it
// reaches the encoder, so no captured audio energy leaves, and its level is reported as
// silence, not speaking; the flag is read once per frame, so a change applies to the next
// frame encoded (at most 20 ms of audio captured before the change may still follow it).
func (a *Audio) SetMuted(muted bool) { a.muted.Store(muted) }

// Muted reports whether the gate is closed: the next frame encoded is silence.
func (a *Audio) Muted() bool { return a.muted.Load() }

// SetSensitivity sets the quietest level sent, in -dBov (0..SilentLevel): frames quieter
// go as silence once SensitivityHangover has passed since the last frame that was not.
// SilentLevel sends everything.
func (a *Audio) SetSensitivity(dBov int) error {
	if dBov < 0 || dBov > SilentLevel {
		return fmt.Errorf("media: audio: sensitivity %d dBov out of range 0..%d", dBov, SilentLevel)
	}
	a.sensitivity.Store(int32(dBov))
	return nil
}

// SetDTX turns discontinuous transmission on or off from the next frame: in silence the
// encoder makes packets that are not sent (an encoder without tuning ignores it).
func (a *Audio) SetDTX(on bool) { a.dtx.Store(on) }

// HandleRTCP reads the packet loss receivers report for the microphone's stream, so the
// encoder spends what its in-band FEC needs for it (an encoder without tuning ignores it).
// The reports come from one sender's RTCP, which concerns only this stream.
func (a *Audio) HandleRTCP(pkts []rtcp.Packet) {
	for _, p := range pkts {
		rr, ok := p.(*rtcp.ReceiverReport)
		if !ok {
			continue
		}
		for _, r := range rr.Reports {
			// Smoothed (weight 1/4 to the newest report), so one bad second does not swing
			// the encoder; in fixed point, so it decays back to 0.
			pct := int32(r.FractionLost) * 100 * lossScale / 256
			a.loss.Store((3*a.loss.Load() + pct) / 4)
		}
	}
}

// lossScale is the fixed point of the smoothed loss; maxExpectedLoss caps the packet loss
// the encoder provisions FEC for, percent: past it more FEC only costs speech quality.
const (
	lossScale       = 16
	maxExpectedLoss = 30
)

// Meter reports the level (-dBov, SilentLevel for silence) and voice flag of the last frame
// encoded: silence, not speaking, while muted or gated.
func (a *Audio) Meter() (level uint8, voice bool) {
	v := a.meter.Load()
	return uint8(v & 0xff), v&0x100 != 0
}

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

// next captures, processes, encodes and writes one 20 ms frame.
func (a *Audio) next(ctx context.Context) error {
	for off := 0; off < len(a.pcm); off += a.period {
		if err := a.mic.ReadPCM(ctx, a.pcm[off:off+a.period]); err != nil {
			return err
		}
	}
	voice := false
	for _, st := range a.stages {
		for off := 0; off < len(a.pcm); off += StageSamples {
			if err := st.ProcessCapture(a.pcm[off : off+StageSamples]); err != nil {
				return err
			}
			for _, d := range a.voice {
				_, v := d.Last()
				voice = voice || v
			}
		}
	}
	level := Level(a.pcm)
	if len(a.voice) == 0 {
		voice = level < SilentLevel
	}
	if a.gate(level) {
		clear(a.pcm)
		level, voice = SilentLevel, false
	}
	if err := a.tune(); err != nil {
		return err
	}
	pkt, err := a.enc.Encode(a.pcm)
	if err != nil {
		return err
	}
	m := uint32(level)
	if voice {
		m |= 0x100
	}
	a.meter.Store(m)
	if a.tuned.dtx && len(pkt) <= dtxPacket {
		a.dropped++
		return nil
	}
	s := media.Sample{Data: pkt, Duration: OpusFrameDuration, PrevDroppedPackets: a.dropped}
	a.dropped = 0
	if a.lw != nil {
		err = a.lw.WriteLevelSample(s, level, voice)
	} else {
		err = a.out.WriteSample(s)
	}
	if err != nil {
		return fmt.Errorf("write sample: %w", err)
	}
	return nil
}

// gate reports whether the frame of this level goes as silence: muted, or quieter than
// the sensitivity with the hangover run out.
func (a *Audio) gate(level uint8) bool {
	if a.muted.Load() {
		return true
	}
	if int32(level) <= a.sensitivity.Load() {
		a.open = SensitivityHangover
		return false
	}
	if a.open > 0 {
		a.open -= OpusFrameDuration
		return false
	}
	return true
}

// tune brings the encoder to the DTX and expected loss asked for, when they changed.
func (a *Audio) tune() error {
	if a.tuner == nil {
		return nil
	}
	want := tuning{dtx: a.dtx.Load(), loss: min((a.loss.Load()+lossScale/2)/lossScale, maxExpectedLoss)}
	if want.dtx != a.tuned.dtx {
		if err := a.tuner.SetDTX(want.dtx); err != nil {
			return err
		}
	}
	if want.loss != a.tuned.loss {
		if err := a.tuner.SetPacketLoss(int(want.loss)); err != nil {
			return err
		}
	}
	a.tuned = want
	return nil
}
