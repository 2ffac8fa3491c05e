// Package acoustic is the room of the simulated board: what its speaker plays comes back into
// its microphone after a delay, reverberated, perhaps distorted by the loudspeaker, over
// stationary noise — the echo an echo canceller has to remove, in a room whose numbers are
// known. Pure Go and deterministic from a seed; no allocation per period.
//
// The room has one timeline, counted in samples at SampleRate: Play puts what the speaker
// plays at its place on it, Capture adds what the microphone hears at another. The near-end
// source (a tone, a WAV file, a test's talker) is whatever the microphone's buffer already
// holds when Capture mixes the room into it.
package acoustic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// SampleRate is the room's rate: the simulated board's.
const SampleRate = 48000

// Limits of Config.
const (
	// MinDelay is the shortest echo path: one block of the convolver (5.3 ms). Real paths
	// are longer: a sound card's buffers alone hold 10 ms or more.
	MinDelay = blockLen * time.Second / SampleRate
	// MaxDelay is the longest echo path, WebRTC's largest stream delay.
	MaxDelay = 500 * time.Millisecond
	// MaxT60 is the longest reverberation: a large, bare hall.
	MaxT60 = 2 * time.Second
)

// Config describes a room. The zero value is no valid room (Delay is below MinDelay).
type Config struct {
	// Delay is how long after the speaker plays a sample its direct sound reaches the
	// microphone: the part of the echo path nobody reports (hidden buffering in a USB
	// speakerphone, the air). MinDelay..MaxDelay.
	Delay time.Duration
	// T60 is the reverberation time: the impulse response's tail decays 60 dB over it.
	// 0: the direct sound only.
	T60 time.Duration
	// ReverbDB is the energy of the reverberant tail relative to the direct sound: about
	// 0 dB for a speaker a metre from the microphone in a small meeting room (the critical
	// distance), -15 dB for a speakerphone whose microphone is a hand's width from its
	// loudspeaker. Ignored without T60.
	ReverbDB float64
	// CouplingDB is how loud the echo is relative to what the speaker is driven with (the
	// impulse response's energy): 0 dB hears the speaker as loud as it is driven, -10 dB a
	// speaker further away. At most +20.
	CouplingDB float64
	// ClipDBFS saturates the loudspeaker: its output is limited softly (tanh) to this peak
	// level, so the echo holds distortion a linear canceller cannot model. 0: a clean
	// loudspeaker.
	ClipDBFS float64
	// NoiseDBFS is the RMS level of stationary white noise at the microphone (a fan, a
	// projector), in dBFS (a full-scale square wave is 0). 0: none.
	NoiseDBFS float64
	// Seed draws the impulse response's taps and the noise: the same seed, the same room.
	Seed uint64
}

// ringLen is how much of what was played is kept for the microphone: the longest delay
// plus room for the speaker to run ahead of the microphone (0.86 s), a power of two.
const ringLen = 1 << 16 // 1.37 s

// Room is an echo path plus noise. Play and Capture may be called from different goroutines.
type Room struct {
	mu    sync.Mutex
	delay int64   // samples
	clip  float64 // the loudspeaker's peak, 0 for none
	sigma float64 // noise standard deviation, 0 for none
	noise *rand.Rand

	// What the speaker played, after its saturation, by timeline index modulo ringLen;
	// valid for indices in [playedFrom, playedEnd) and not older than ringLen.
	played     []float32
	playedFrom int64
	playedEnd  int64
	started    bool // something was played

	conv   *convolver
	x, out []float64 // one block of the convolver's input and output
	outAt  int64     // timeline index of out[0]; out is valid when outOK
	outOK  bool
}

// New builds the room cfg describes.
func New(cfg Config) (*Room, error) {
	switch {
	case cfg.Delay < MinDelay || cfg.Delay > MaxDelay:
		return nil, fmt.Errorf("acoustic: delay %v out of range %v..%v", cfg.Delay, MinDelay, MaxDelay)
	case cfg.T60 < 0 || cfg.T60 > MaxT60:
		return nil, fmt.Errorf("acoustic: T60 %v out of range 0..%v", cfg.T60, MaxT60)
	case !(cfg.CouplingDB <= 20): // also NaN
		return nil, fmt.Errorf("acoustic: coupling %g dB above +20 dB", cfg.CouplingDB)
	case !(cfg.ReverbDB >= -60 && cfg.ReverbDB <= 20):
		return nil, fmt.Errorf("acoustic: reverberation %g dB out of range -60..+20 dB", cfg.ReverbDB)
	case !(cfg.ClipDBFS <= 0) || !(cfg.NoiseDBFS <= 0):
		return nil, fmt.Errorf("acoustic: clip (%g dBFS) and noise (%g dBFS) must be at most 0 dBFS", cfg.ClipDBFS, cfg.NoiseDBFS)
	}
	r := &Room{
		delay:  samples(cfg.Delay),
		noise:  rand.New(rand.NewPCG(cfg.Seed, 2)),
		played: make([]float32, ringLen),
		conv:   newConvolver(impulseResponse(cfg)),
		x:      make([]float64, blockLen),
		out:    make([]float64, blockLen),
	}
	if cfg.ClipDBFS != 0 {
		r.clip = fullScale * math.Pow(10, cfg.ClipDBFS/20)
	}
	if cfg.NoiseDBFS != 0 {
		r.sigma = fullScale * math.Pow(10, cfg.NoiseDBFS/20)
	}
	return r, nil
}

// fullScale is 0 dBFS on the 16-bit scale.
const fullScale = 32768

func samples(d time.Duration) int64 {
	return int64(d/time.Second)*SampleRate + int64(d%time.Second)*SampleRate/int64(time.Second)
}

// impulseResponse is the direct sound followed by a tail of Gaussian taps under an
// exponential envelope that falls 60 dB over T60 (and ends there), the tail scaled to
// ReverbDB and the whole to the coupling's energy.
func impulseResponse(cfg Config) []float64 {
	n := max(samples(cfg.T60), 1)
	h := make([]float64, n)
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	decay := math.Log(1000) / float64(n) // amplitude falls by 1000 (60 dB) over n taps
	var tail float64
	for k := int64(1); k < n; k++ {
		h[k] = math.Exp(-decay*float64(k)) * rng.NormFloat64()
		tail += h[k] * h[k]
	}
	h[0] = 1
	energy := 1.0
	if tail > 0 {
		reverb := math.Pow(10, cfg.ReverbDB/10)
		g := math.Sqrt(reverb / tail)
		for k := range h[1:] {
			h[1+k] *= g
		}
		energy += reverb
	}
	scale := math.Pow(10, cfg.CouplingDB/20) / math.Sqrt(energy)
	for k := range h {
		h[k] *= scale
	}
	return h
}

// SetDelay changes the echo path's delay from the next sample captured on, as when a sound
// card's buffering changes or the speakerphone is moved.
func (r *Room) SetDelay(d time.Duration) error {
	if d < MinDelay || d > MaxDelay {
		return fmt.Errorf("acoustic: delay %v out of range %v..%v", d, MinDelay, MaxDelay)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = samples(d)
	return nil
}

// Play records that the speaker plays pcm (mono), its first sample at timeline index at. A
// gap since the last Play is silence.
func (r *Room) Play(at int64, pcm []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started || at-r.playedEnd >= ringLen || at < r.playedFrom {
		r.playedFrom, r.playedEnd, r.started = at, at, true
	}
	for ; r.playedEnd < at; r.playedEnd++ {
		r.played[r.playedEnd&(ringLen-1)] = 0
	}
	for i, v := range pcm {
		s := float64(v)
		if r.clip != 0 {
			s = r.clip * math.Tanh(s/r.clip)
		}
		r.played[(at+int64(i))&(ringLen-1)] = float32(s)
	}
	r.playedEnd = max(r.playedEnd, at+int64(len(pcm)))
}

// Capture adds to pcm (mono, holding the near-end sound) what the microphone hears of the
// room for the samples starting at timeline index at: the echo of what was played and the
// noise. The sum saturates at 16 bits.
func (r *Room) Capture(at int64, pcm []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range pcm {
		t := at + int64(i)
		if !r.outOK || t < r.outAt || t >= r.outAt+blockLen {
			r.advance(t)
		}
		v := float64(pcm[i]) + r.out[t-r.outAt]
		if r.sigma != 0 {
			v += r.sigma * r.noise.NormFloat64()
		}
		pcm[i] = int16(max(min(math.Round(v), math.MaxInt16), math.MinInt16))
	}
}

// advance computes the echo for the block holding timeline index t. Blocks follow one
// another; after a jump (the first capture, a microphone that skipped or went back) the
// convolver starts afresh as many blocks back as its response is long, so the echo of what
// was played before the jump is there too.
func (r *Room) advance(t int64) {
	start := t &^ (blockLen - 1)
	next := r.outAt + blockLen
	span := int64(len(r.conv.parts)) * blockLen
	if !r.outOK || start < next || start-next >= span {
		r.conv.reset()
		next = start - span + blockLen
	}
	for ; next <= start; next += blockLen {
		for j := range r.x {
			r.x[j] = r.playedAt(next + int64(j) - r.delay)
		}
		r.conv.block(r.x, r.out)
	}
	r.outAt, r.outOK = start, true
}

// Energy is the sum of the squares of pcm: what the room's levels are measured in, and the
// measure of what a canceller or suppressor leaves of what the room adds.
func Energy(pcm []int16) float64 {
	var e float64
	for _, v := range pcm {
		e += float64(v) * float64(v)
	}
	return e
}

// playedAt is what the speaker played at timeline index t, 0 if nothing (or it is too old).
func (r *Room) playedAt(t int64) float64 {
	if !r.started || t < r.playedFrom || t >= r.playedEnd || t < r.playedEnd-ringLen {
		return 0
	}
	return float64(r.played[t&(ringLen-1)])
}
