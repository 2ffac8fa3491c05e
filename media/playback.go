package media

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"

	"roombox/hal"
)

// RTPSource is a remote track's packets: a *webrtc.TrackRemote. Read fills b with one RTP
// packet; an error ends the track (pion returns io.EOF once the track is closed). Read
// takes no context, so Playback stops a blocked reader with a read deadline in the past.
type RTPSource interface {
	Read(b []byte) (int, interceptor.Attributes, error)
	SetReadDeadline(t time.Time) error
}

// Jitter buffering, counted in packets (LiveKit's clients send 20 ms Opus packets).
const (
	// jitterSlots bounds each track's buffer: 160 ms of 20 ms packets. A packet further
	// ahead means the speaker fell behind the sender (its clock runs fast) or the stream
	// jumped; the track then drops what is older and plays on from the newest packets, so
	// latency stays bounded.
	jitterSlots = 8
	// jitterStart is how many packets a track buffers before it plays (40 ms): the network
	// jitter it absorbs without a gap.
	jitterStart = 2
	// maxConceal is how many missing packets in a row are concealed before the track is
	// taken as paused (its sender muted, left, or is in DTX silence) and goes quiet until it
	// has buffered anew.
	maxConceal = 5
	// maxLate: a packet further behind than this is not late but a restarted stream.
	maxLate = 4 * jitterSlots
	// rtpMTU is the largest RTP packet read (pion's default receive MTU is 1460 bytes).
	rtpMTU = 1500
)

// MaxVolume is the top of Playback's volume scale.
const MaxVolume = 100

// volumeRangeDB is the span of the volume scale: MaxVolume plays at unity gain, 1 at
// -49.5 dB, 0 is silent. Loudness is heard logarithmically, so equal volume steps are
// equal steps in dB (a step of 10 is 5 dB, about 1.4 times as loud); a linear gain would
// crowd nearly all the audible change into the bottom fifth of the scale.
const volumeRangeDB = 50

// volumeGain is the linear gain of volume, clamped to 0..MaxVolume.
func volumeGain(volume int) float32 {
	if volume <= 0 {
		return 0
	}
	db := -volumeRangeDB * float64(MaxVolume-min(volume, MaxVolume)) / MaxVolume
	return float32(math.Pow(10, db/20))
}

// ErrPlaybackStopped is adding a track after Run has returned.
var ErrPlaybackStopped = errors.New("media: playback stopped")

// Playback plays remote Opus tracks through a speaker: each track is read by its own
// goroutine into a small jitter buffer, then per speaker period every track is decoded
// (lost packets concealed), the tracks are summed, the volume applied, and the period
// written. Controls are safe from any goroutine.
type Playback struct {
	out      hal.AudioOut
	channels int
	muted    atomic.Bool
	gain     atomic.Uint32 // float32 bits of the volume's gain

	mu      sync.Mutex
	pending []*track // added; Run starts their readers
	tracks  []*track // being read
	stopped bool

	// Run's goroutine only.
	active  []*track
	applied float32 // gain at the end of the last period: where the next one ramps from
	mix     []int32 // one period, mono
	buf     []int16 // one period as the speaker takes it
	far     FarEnd  // set before Run; nil if nobody wants the reference
	farBuf  []int16 // one period, mono, as played: the far end's reference
}

// NewPlayback returns an unmuted playback at MaxVolume for a speaker at the Opus rate
// (48 kHz), any number of channels and any period.
func NewPlayback(out hal.AudioOut) (*Playback, error) {
	f := out.Format()
	if f.SampleRate != OpusSampleRate || f.Channels < 1 || f.FrameSamples <= 0 {
		return nil, fmt.Errorf("media: playback: speaker takes %d Hz x %d channels in %d-sample periods; want %d Hz (there is no resampler)",
			f.SampleRate, f.Channels, f.FrameSamples, OpusSampleRate)
	}
	p := &Playback{
		out:      out,
		channels: f.Channels,
		applied:  1,
		mix:      make([]int32, f.FrameSamples),
		buf:      make([]int16, f.FrameSamples*f.Channels),
	}
	p.SetVolume(MaxVolume)
	return p, nil
}

// SetFarEnd hands every period played to far as well (an echo canceller's reference).
// Call it before Run.
func (p *Playback) SetFarEnd(far FarEnd) {
	p.far = far
	p.farBuf = make([]int16, len(p.mix))
}

// SetMuted makes the speaker deaf: while muted every period written is silence, so nothing
// of the room is played. Silence is still written, so the speaker's clock keeps running
// (no underruns, a continuous reference for echo cancellation) and the tracks keep being
// decoded, so an unmute resumes at once with current audio. A change ramps over one
// period, so it does not click.
func (p *Playback) SetMuted(muted bool) { p.muted.Store(muted) }

// SetVolume sets the volume, 0 (silent) to MaxVolume (unity gain); see volumeRangeDB.
// Values outside the scale are clamped. A change ramps over one period.
func (p *Playback) SetVolume(volume int) {
	p.gain.Store(math.Float32bits(volumeGain(volume)))
}

// AddTrack plays a remote Opus track until its Read fails (the track ended) or Run ends.
// Safe from any goroutine, such as a room's OnTrack callback.
func (p *Playback) AddTrack(src RTPSource) error {
	dec, err := NewOpusDecoder()
	if err != nil {
		return err
	}
	t := &track{
		src: src,
		buf: make([]byte, rtpMTU),
		dec: dec,
		pkt: make([]byte, 0, maxOpusPacket),
		fec: make([]byte, 0, maxOpusPacket),
		// A period's remainder plus the longest packet: room to decode without moving.
		pcm: make([]int16, len(p.mix)+maxOpusSamples),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return ErrPlaybackStopped
	}
	p.pending = append(p.pending, t)
	return nil
}

// Tracks returns how many tracks are playing: added and not ended.
func (p *Playback) Tracks() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending) + len(p.tracks)
}

// Run plays until ctx ends (then it returns nil) or the speaker fails. It owns the tracks'
// readers and returns only once they have stopped. Call it once.
func (p *Playback) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer p.stop() // first: makes the readers return
	for {
		p.admit(&wg)
		p.mixPeriod()
		if p.far != nil {
			p.far.Played(p.farBuf, speakerDelay(p.out))
		}
		if err := p.out.WritePCM(ctx, p.buf); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("media: playback: %w", err)
		}
	}
}

// admit starts the readers of the tracks added since the last period.
func (p *Playback) admit(wg *sync.WaitGroup) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.pending {
		p.tracks = append(p.tracks, t)
		wg.Go(func() { p.read(t) })
	}
	clear(p.pending)
	p.pending = p.pending[:0]
}

// stop makes every reader return and refuses new tracks.
func (p *Playback) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	p.pending = nil
	for _, t := range p.tracks {
		// A source that refuses the deadline still returns when its track closes.
		_ = t.src.SetReadDeadline(time.Now())
	}
}

// read feeds a track's jitter buffer until the track ends, then removes it.
func (p *Playback) read(t *track) {
	defer func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.tracks = slices.DeleteFunc(p.tracks, func(x *track) bool { return x == t })
	}()
	for {
		n, _, err := t.src.Read(t.buf)
		if err != nil {
			return
		}
		t.receive(t.buf[:n])
	}
}

// mixPeriod fills p.buf with the next period: every track's audio summed, the gain applied
// (ramped from the last period's), saturated to 16 bits.
func (p *Playback) mixPeriod() {
	p.mu.Lock()
	p.active = append(p.active[:0], p.tracks...)
	p.mu.Unlock()
	clear(p.mix)
	for _, t := range p.active {
		t.mixInto(p.mix)
	}
	clear(p.active) // let ended tracks go

	target := math.Float32frombits(p.gain.Load())
	if p.muted.Load() {
		target = 0
	}
	g, step := p.applied, (target-p.applied)/float32(len(p.mix))
	for i, v := range p.mix {
		s := int16(min(max(float32(v)*g, math.MinInt16), math.MaxInt16))
		frame := p.buf[i*p.channels : (i+1)*p.channels]
		for c := range frame {
			frame[c] = s // a mono mix on every channel
		}
		if p.farBuf != nil {
			p.farBuf[i] = s
		}
		g += step
	}
	p.applied = target
}

// speakerDelay is how long audio written to out now waits before it is heard, if out can
// tell.
func speakerDelay(out hal.AudioOut) time.Duration {
	if d, ok := out.(hal.DelayReporter); ok {
		return d.Delay()
	}
	return 0
}

// track is one remote track: a jitter buffer the reader fills and the mixer drains, and
// the mixer's decoder state.
type track struct {
	src RTPSource

	// The reader's goroutine only.
	buf []byte
	rtp rtp.Packet

	mu      sync.Mutex
	slots   [jitterSlots]slot // by sequence number modulo jitterSlots
	next    uint16            // the sequence number to play next
	started bool              // next is set
	playing bool              // buffered enough; false until then and after a pause
	lost    int               // missing packets concealed in a row

	// The mixer's goroutine only.
	dec        *OpusDecoder
	pkt        []byte  // the packet to decode, copied out of the buffer
	fec        []byte  // the packet after a lost one, for its FEC
	frame      int     // samples in the last packet: what a lost one is concealed with
	pcm        []int16 // decoded and not yet mixed: pcm[head:tail]
	head, tail int
}

type slot struct {
	seq  uint16
	full bool
	n    int
	data [maxOpusPacket]byte
}

// receive buffers one RTP packet; what is not RTP is ignored.
func (t *track) receive(b []byte) {
	if t.rtp.Unmarshal(b) == nil && len(t.rtp.Payload) <= maxOpusPacket {
		t.push(t.rtp.SequenceNumber, t.rtp.Payload)
	}
}

// push stores a packet unless its turn has passed. An empty payload (padding) still takes
// its sequence number, so it is not mistaken for a loss.
func (t *track) push(seq uint16, payload []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started {
		t.next, t.started = seq, true
	}
	switch d := int16(seq - t.next); {
	case d < -maxLate || d >= jitterSlots:
		t.restartAt(seq)
	case d < 0:
		return // late: played or concealed already
	}
	s := &t.slots[seq%jitterSlots]
	s.seq, s.full, s.n = seq, true, copy(s.data[:], payload)
}

// restartAt keeps only the packets from jitterStart-1 before seq up to seq and makes the
// track buffer anew from the oldest of them.
func (t *track) restartAt(seq uint16) {
	from := seq - (jitterStart - 1)
	for i := range t.slots {
		if s := &t.slots[i]; s.full && s.seq-from >= jitterStart {
			s.full = false
		}
	}
	t.next, t.playing = from, false
}

// mixInto adds the track's next len(acc) samples to acc; a track short of audio adds what
// it has.
func (t *track) mixInto(acc []int32) {
	t.fill(len(acc))
	m := min(t.tail-t.head, len(acc))
	for i, v := range t.pcm[t.head : t.head+m] {
		acc[i] += int32(v)
	}
	t.head += m
}

// fill decodes or conceals packets in turn until n samples are ready or the track has
// nothing to play now.
func (t *track) fill(n int) {
	for t.tail-t.head < n {
		var pcm []int16
		var err error
		switch t.take() {
		case takeWait:
			return
		case takeSkip:
			continue
		case takePacket:
			if pcm, err = t.dec.Decode(t.pkt); err != nil {
				pcm, err = t.dec.Conceal(nil, t.frame) // a corrupt packet is as good as lost
			}
		case takeLost:
			pcm, err = t.dec.Conceal(t.fec, t.frame)
		}
		if err != nil {
			t.pause() // nothing decodable: quiet until the track buffers anew
			return
		}
		t.frame = len(pcm)
		if t.head > 0 {
			t.tail = copy(t.pcm, t.pcm[t.head:t.tail])
			t.head = 0
		}
		t.tail += copy(t.pcm[t.tail:], pcm)
	}
}

type takeResult int

const (
	takeWait   takeResult = iota // nothing to play now
	takePacket                   // t.pkt holds the next packet
	takeLost                     // the next packet is missing; t.fec holds the one after it, if buffered
	takeSkip                     // the next packet carries no audio
)

// take moves the jitter buffer on by one packet and says what to play for it.
func (t *track) take() takeResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.playing {
		oldest, n := t.buffered()
		if n < jitterStart {
			return takeWait
		}
		t.next, t.playing, t.lost = oldest, true, 0
	}
	if s := t.slot(t.next); s != nil {
		s.full = false
		t.next++
		t.lost = 0
		if s.n == 0 {
			return takeSkip
		}
		t.pkt = append(t.pkt[:0], s.data[:s.n]...)
		return takePacket
	}
	if t.lost == maxConceal {
		t.playing = false
		return takeWait
	}
	t.lost++
	t.fec = t.fec[:0]
	if s := t.slot(t.next + 1); s != nil {
		t.fec = append(t.fec, s.data[:s.n]...)
	}
	t.next++
	return takeLost
}

func (t *track) pause() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.playing = false
}

// slot returns the buffered packet with sequence number seq, or nil.
func (t *track) slot(seq uint16) *slot {
	if s := &t.slots[seq%jitterSlots]; s.full && s.seq == seq {
		return s
	}
	return nil
}

// buffered returns how many packets are buffered and the oldest one's sequence number.
func (t *track) buffered() (oldest uint16, n int) {
	for i := range t.slots {
		s := &t.slots[i]
		if !s.full {
			continue
		}
		if n == 0 || int16(s.seq-oldest) < 0 {
			oldest = s.seq
		}
		n++
	}
	return oldest, n
}
