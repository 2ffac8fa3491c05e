package alsa

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"roombox/hal/sim"
)

// Report is what CheckLoopback measured.
type Report struct {
	Play, Capture Params
	// ToneDBFS is the level of the 440 Hz tone in the capture, the median over 50 ms
	// blocks; it is played at -10 dBFS (sim.ToneAmplitude), so a loopback that passes
	// samples unchanged reads -10.
	ToneDBFS float64
	// Latency runs from the WritePCM call that hands over the tone's first period to the
	// return of the ReadPCM that delivers its first sample: playback buffer, transport and
	// one capture period.
	Latency time.Duration
	// ToneXruns counts the underruns while the silence and the tone played, and
	// CaptureXruns the overruns of the whole capture: none on an idle machine; each leaves
	// a gap in the capture.
	ToneXruns, CaptureXruns uint64
	// Xruns is how many underruns the speaker counted after CheckLoopback stopped writing
	// for longer than its buffer; the write after the gap must succeed.
	Xruns uint64
}

func (r Report) String() string {
	return fmt.Sprintf("tone %.1f dBFS (%d underruns, %d overruns), latency %v, xruns after a gap %d; play %s; capture %s",
		r.ToneDBFS, r.ToneXruns, r.CaptureXruns, r.Latency, r.Xruns, r.Play, r.Capture)
}

// Loopback check timing: silence while both streams settle, the tone, the part of the
// tone measured, in blocks of a whole number of 440 Hz cycles (22 in 50 ms).
const (
	loopSettle  = 200 * time.Millisecond
	loopTone    = time.Second
	loopMeasure = SampleRate / 2
	loopBlock   = SampleRate / 20
	toneHz      = 440
)

// CheckLoopback plays a 440 Hz tone into playDev and captures it from captureDev (the
// two ends of snd-aloop: "hw:Loopback,0,0" and "hw:Loopback,1,0"); it measures the tone's
// level and the latency, then stops writing for three buffers and checks that the next
// write succeeds and the underrun is counted. It fails if the tone is not heard (below
// -20 dBFS) or the underrun is not recovered and counted. For the VM lab, which runs it
// against the real driver.
func CheckLoopback(ctx context.Context, playDev, captureDev string) (Report, error) {
	var rep Report
	mic, err := OpenMic(Config{Device: captureDev})
	if err != nil {
		return rep, err
	}
	defer mic.Close()
	sp, err := OpenSpeaker(Config{Device: playDev})
	if err != nil {
		return rep, err
	}
	defer sp.Close()
	rep.Play, rep.Capture = sp.Params(), mic.Params()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the Wait: ends the capture early on a failure
	capture := make(chan captured, 1)
	wg.Go(func() {
		capture <- record(ctx, mic, loopSettle+loopTone+time.Second)
	})

	toneStart, err := playTone(ctx, sp)
	if err != nil {
		return rep, err
	}
	before := sp.Xruns()
	rep.ToneXruns = before
	gap := 3*rep.Play.Latency() + 50*time.Millisecond
	select {
	case <-time.After(gap):
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	if err := sp.WritePCM(ctx, make([]int16, PeriodFrames)); err != nil {
		return rep, fmt.Errorf("alsa: loopback: write after an underrun: %w", err)
	}
	rep.Xruns = sp.Xruns() - before

	c := <-capture
	rep.CaptureXruns = mic.Xruns()
	if c.err != nil {
		return rep, fmt.Errorf("alsa: loopback: capture: %w", c.err)
	}
	onset := firstAbove(c.pcm, 1000) // the tone starts at phase 0 and passes 1000 by its 3rd sample
	if onset < 0 || onset+SampleRate/10+loopMeasure > len(c.pcm) {
		return rep, fmt.Errorf("alsa: loopback: the tone was not captured (%d samples, onset %d)", len(c.pcm), onset)
	}
	rep.Latency = c.returned[onset/PeriodFrames].Sub(toneStart)
	// Skip 100 ms: a resampling plugin or the driver's start can smear the onset.
	rep.ToneDBFS = medianToneDBFS(c.pcm[onset+SampleRate/10:][:loopMeasure])
	switch {
	case rep.ToneDBFS < -20:
		return rep, fmt.Errorf("alsa: loopback: tone at %.1f dBFS, want about -10", rep.ToneDBFS)
	case rep.Xruns == 0:
		return rep, fmt.Errorf("alsa: loopback: a %v gap in playback counted no underrun", gap)
	}
	return rep, nil
}

// playTone writes loopSettle of silence then loopTone of the tone, and returns when it
// called WritePCM with the tone's first period.
func playTone(ctx context.Context, sp *Speaker) (time.Time, error) {
	buf := make([]int16, PeriodFrames)
	settle := int(loopSettle / (10 * time.Millisecond))
	var start time.Time
	step := 2 * math.Pi * toneHz / SampleRate
	for p := range settle + int(loopTone/(10*time.Millisecond)) {
		if p >= settle {
			for i := range buf {
				buf[i] = int16(math.Round(sim.ToneAmplitude * math.Sin(step*float64((p-settle)*PeriodFrames+i))))
			}
		}
		if p == settle {
			start = time.Now()
		}
		if err := sp.WritePCM(ctx, buf); err != nil {
			return start, fmt.Errorf("alsa: loopback: play: %w", err)
		}
	}
	return start, nil
}

type captured struct {
	pcm      []int16
	returned []time.Time // when the ReadPCM of each period returned
	err      error
}

// record captures d of audio, stamping each period.
func record(ctx context.Context, mic *Mic, d time.Duration) captured {
	periods := int(d / (10 * time.Millisecond))
	c := captured{pcm: make([]int16, periods*PeriodFrames), returned: make([]time.Time, periods)}
	for p := range periods {
		if c.err = mic.ReadPCM(ctx, c.pcm[p*PeriodFrames:(p+1)*PeriodFrames]); c.err != nil {
			return c
		}
		c.returned[p] = time.Now()
	}
	return c
}

// medianToneDBFS is the median of the tone's level in each block of pcm: an xrun's gap
// lowers the level of a block or two, not the median. A slow machine (the lab VM under
// TCG) has some.
func medianToneDBFS(pcm []int16) float64 {
	var levels []float64
	for b := range len(pcm) / loopBlock {
		levels = append(levels, sim.ToneDBFS(pcm[b*loopBlock:(b+1)*loopBlock], toneHz, SampleRate))
	}
	slices.Sort(levels)
	return levels[len(levels)/2]
}

func firstAbove(pcm []int16, level int16) int {
	for i, v := range pcm {
		if v > level || v < -level {
			return i
		}
	}
	return -1
}
