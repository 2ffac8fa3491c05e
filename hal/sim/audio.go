package sim

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"roombox/hal"
)

// Audio format of the simulated microphone and speaker: 48 kHz mono, 10 ms periods.
const (
	SampleRate    = 48000
	PeriodSamples = SampleRate / 100
)

// ToneAmplitude is the microphone tone's peak, 32767 * 10^(-10/20) = -10 dBFS: its RMS
// level is about -13 dBFS.
const ToneAmplitude = 10362

// MinDBFS is the level reported for digital silence.
const MinDBFS = -100.0

var audioFormat = hal.AudioFormat{SampleRate: SampleRate, Channels: 1, FrameSamples: PeriodSamples}

// maxAudioLag is how late a reader or writer may fall behind before the schedule restarts,
// like an ALSA overrun or underrun.
const maxAudioLag = 100 * time.Millisecond

// Mic is a microphone that hears a pure tone, or a recording played in a loop. Periods are
// paced in real time: period k is delivered once it has been "recorded", at start +
// (k+1)*10 ms. The tone's phase is continuous across periods. ReadPCM is for one
// goroutine; Close may be called from any.
type Mic struct {
	pace   pacer
	closed atomic.Bool
	room   *echoPath // nil: the microphone's own sound alone
	pcm    []int16   // the recording; nil: the tone
	pos    int       // where in pcm the next period starts
	// The tone is a unit phasor (re, im) = (cos, sin) of the phase, turned by (stepRe,
	// stepIm) each sample: two multiply-adds instead of a math.Sin per sample.
	re, im         float64
	stepRe, stepIm float64
}

func newMic(toneHz float64, pcm []int16, clock Clock) *Mic {
	step := 2 * math.Pi * toneHz / SampleRate
	return &Mic{
		pace:   pacer{clock: clock, rate: SampleRate, maxLag: maxAudioLag},
		pcm:    pcm,
		re:     1,
		stepRe: math.Cos(step),
		stepIm: math.Sin(step),
	}
}

// Format is 48 kHz mono, 480-sample periods.
func (m *Mic) Format() hal.AudioFormat { return audioFormat }

// ReadPCM fills buf[:480] with the next period.
func (m *Mic) ReadPCM(ctx context.Context, buf []int16) error {
	if m.closed.Load() {
		return hal.ErrClosed
	}
	if len(buf) < PeriodSamples {
		return fmt.Errorf("sim: mic: buffer of %d samples is shorter than a %d-sample period", len(buf), PeriodSamples)
	}
	n, err := m.pace.next(ctx, PeriodSamples, PeriodSamples)
	if err != nil {
		return fmt.Errorf("sim: mic: %w", err)
	}
	if m.closed.Load() {
		return hal.ErrClosed
	}
	if m.pcm != nil {
		m.play(buf[:PeriodSamples])
	} else {
		m.tone(buf[:PeriodSamples])
	}
	if m.room != nil {
		m.room.capture(m.pace.start, n, buf[:PeriodSamples])
	}
	return nil
}

// tone fills buf with the next samples of the tone.
func (m *Mic) tone(buf []int16) {
	re, im := m.re, m.im
	for i := range buf {
		buf[i] = int16(math.Round(ToneAmplitude * im))
		re, im = re*m.stepRe-im*m.stepIm, re*m.stepIm+im*m.stepRe
	}
	r := math.Hypot(re, im) // keep the phasor on the unit circle despite rounding
	m.re, m.im = re/r, im/r
}

// play fills buf with the next samples of the recording, from its start again at its end.
func (m *Mic) play(buf []int16) {
	for n := 0; n < len(buf); {
		c := copy(buf[n:], m.pcm[m.pos:])
		n += c
		m.pos = (m.pos + c) % len(m.pcm)
	}
}

// Close makes further reads return hal.ErrClosed.
func (m *Mic) Close() error {
	m.closed.Store(true)
	return nil
}

// Speaker is a sink that plays nothing but measures what it is given, and optionally keeps
// the first samples it receives. Writes are paced like a sound card with one period of
// buffer: a write of n samples returns once the previous writes have "played".
// WritePCM is for one goroutine; the level accessors may be called from any.
type Speaker struct {
	pace   pacer
	closed atomic.Bool
	room   *echoPath // nil: what is played goes nowhere

	mu     sync.Mutex
	level  float64 // RMS dBFS of the last write
	peak   float64 // highest sample magnitude since start or ResetPeak, dBFS
	writes uint64
	rec    []int16 // recording, capacity fixed at construction
}

func newSpeaker(record time.Duration, clock Clock) *Speaker {
	s := &Speaker{
		pace:  pacer{clock: clock, rate: SampleRate, maxLag: maxAudioLag},
		level: MinDBFS,
		peak:  MinDBFS,
	}
	if record > 0 {
		s.rec = make([]int16, 0, int(record.Seconds()*SampleRate))
	}
	return s
}

// Format is 48 kHz mono, 480-sample periods.
func (s *Speaker) Format() hal.AudioFormat { return audioFormat }

// WritePCM "plays" buf: it measures its level, records it if recording, and paces the
// caller.
func (s *Speaker) WritePCM(ctx context.Context, buf []int16) error {
	if s.closed.Load() {
		return hal.ErrClosed
	}
	n, err := s.pace.next(ctx, 0, int64(len(buf)))
	if err != nil {
		return fmt.Errorf("sim: speaker: %w", err)
	}
	if s.room != nil {
		s.room.play(s.pace.start, n, buf)
	}
	var sum float64
	var top int
	for _, v := range buf {
		sum += float64(v) * float64(v)
		top = max(top, abs(int(v)))
	}
	rms := 0.0
	if len(buf) > 0 {
		rms = math.Sqrt(sum / float64(len(buf)))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.level = DBFS(rms)
	s.peak = max(s.peak, DBFS(float64(top)))
	s.writes++
	if n := min(len(buf), cap(s.rec)-len(s.rec)); n > 0 {
		s.rec = append(s.rec, buf[:n]...)
	}
	return nil
}

// Level returns the RMS level of the last write in dBFS (full-scale square wave = 0 dBFS,
// full-scale sine = -3 dBFS; silence = MinDBFS).
func (s *Speaker) Level() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.level
}

// Peak returns the largest sample magnitude written since start or ResetPeak, in dBFS.
func (s *Speaker) Peak() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// ResetPeak restarts the running peak.
func (s *Speaker) ResetPeak() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peak = MinDBFS
}

// Writes returns how many WritePCM calls have been played.
func (s *Speaker) Writes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Recording returns a copy of the samples recorded so far (up to Config.SpeakerRecord).
func (s *Speaker) Recording() []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int16(nil), s.rec...)
}

// Close makes further writes return hal.ErrClosed.
func (s *Speaker) Close() error {
	s.closed.Store(true)
	return nil
}

// DBFS converts a magnitude on the 16-bit scale to dBFS (32768 = 0 dBFS), at least MinDBFS.
func DBFS(v float64) float64 {
	if v <= 0 {
		return MinDBFS
	}
	return max(20*math.Log10(v/32768), MinDBFS)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// ToneDBFS measures the peak amplitude of one frequency in pcm, sampled at rate, in dBFS:
// a full-scale sine at hz reads 0, the microphone's tone -10, silence MinDBFS. It is the
// Goertzel algorithm; pcm should hold a whole number of the tone's cycles, or the reading
// is a little low.
func ToneDBFS(pcm []int16, hz float64, rate int) float64 {
	if len(pcm) == 0 {
		return MinDBFS
	}
	k := 2 * math.Cos(2*math.Pi*hz/float64(rate))
	var s1, s2 float64
	for _, v := range pcm {
		s1, s2 = float64(v)+k*s1-s2, s1
	}
	power := s1*s1 + s2*s2 - k*s1*s2
	return DBFS(2 * math.Sqrt(max(power, 0)) / float64(len(pcm)))
}
