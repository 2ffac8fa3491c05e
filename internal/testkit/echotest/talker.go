package echotest

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"roombox/hal"
	"roombox/media"
	"roombox/signaling"
)

// Talker is a participant, on the project's own client, that says a recording into the
// room over and over (Opus, as any participant would) and records what one other
// participant sends, decoded, on the same timeline: sample i of the timeline was due to
// be sent at Start + i/Rate, and what was heard is placed by its RTP timestamp, so the
// echo of sample i is heard at i + the round trip.
type Talker struct {
	says []int16
	from string // the identity whose audio is recorded
	room *signaling.Room
	src  *source

	mu      sync.Mutex
	packets []heardPacket
	tracks  int // audio tracks of from seen
	errs    []error
}

type heardPacket struct {
	ts  int64     // RTP timestamp, unwrapped, counted from the first packet's
	at  time.Time // arrival
	pcm []int16
}

// JoinTalker joins url with token, says says (48 kHz mono) in a loop from now until the
// test ends, subscribes to every audio track and records those of the participant whose
// identity is from. The test's cleanup leaves the room and waits for every goroutine.
func JoinTalker(t testing.TB, url, token string, says []int16, from string) *Talker {
	t.Helper()
	tk := &Talker{says: says, from: from, src: &source{says: says, started: make(chan struct{})}}
	track, err := webrtc.NewTrackLocalStaticSample(signaling.Opus, "talker-mic", "talker")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := media.NewOpusEncoder(media.DefaultConfig.AudioBitrate)
	if err != nil {
		t.Fatal(err)
	}
	audio, err := media.NewAudio(tk.src, enc, track)
	if err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	tk.room = signaling.NewRoom(signaling.RoomOptions{URL: url, Tokens: signaling.StaticToken(token),
		SubscribeAudio: true,
		OnTrack: func(rt *signaling.RemoteTrack) {
			if rt.Identity != from || rt.Track.Kind() != webrtc.RTPCodecTypeAudio {
				return
			}
			readers.Go(func() { tk.read(rt) })
		},
		Session: signaling.Options{JoinTimeout: time.Minute}})
	tk.room.SetTracks(signaling.Track{LocalTrack: signaling.LocalTrack{Track: track,
		Source: signaling.SourceMicrophone, Name: "microphone"}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = tk.room.Run(ctx) }) // a join that fails is seen as nothing heard
	wg.Go(func() {
		if err := audio.Run(ctx); err != nil {
			tk.fail(err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		readers.Wait() // the tracks end with the session
		tk.mu.Lock()
		defer tk.mu.Unlock()
		for _, err := range tk.errs {
			t.Errorf("talker: %v", err)
		}
	})
	select {
	case <-tk.src.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the talker's audio pipeline did not read its first period within 10 s")
	}
	return tk
}

// JoinError is why the talker's last join or session ended, nil while it is in the room:
// what a test that waits for it to hear the box says when it never does.
func (tk *Talker) JoinError() error { return tk.room.State().LastError }

// PacketsSent is how many audio packets the talker has sent in its current session.
func (tk *Talker) PacketsSent() uint64 {
	var n uint64
	for _, s := range tk.room.Stats() {
		n += s.PacketsSent
	}
	return n
}

func (tk *Talker) fail(err error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.errs = append(tk.errs, err)
}

// read decodes one track of the recorded participant until it ends.
func (tk *Talker) read(rt *signaling.RemoteTrack) {
	dec, err := media.NewOpusDecoder()
	if err != nil {
		tk.fail(err)
		return
	}
	tk.mu.Lock()
	tk.tracks++
	tk.mu.Unlock()
	var last uint32
	var ext int64
	started := false
	for {
		pkt, _, err := rt.Track.ReadRTP()
		if err != nil {
			return
		}
		at := time.Now()
		if len(pkt.Payload) == 0 {
			continue
		}
		pcm, err := dec.Decode(pkt.Payload)
		if err != nil {
			tk.fail(fmt.Errorf("decoding %s's audio: %w", tk.from, err))
			return
		}
		if !started {
			last, started = pkt.Timestamp, true
		}
		ext += int64(int32(pkt.Timestamp - last))
		last = pkt.Timestamp
		tk.mu.Lock()
		tk.packets = append(tk.packets, heardPacket{ts: ext, at: at, pcm: append([]int16(nil), pcm...)})
		tk.mu.Unlock()
	}
}

// Start is when sample 0 of the timeline was due to be sent.
func (tk *Talker) Start() time.Time { return tk.src.start }

// Index is the timeline's sample at time at.
func (tk *Talker) Index(at time.Time) int { return Samples(at.Sub(tk.src.start)) }

// Tracks is how many audio tracks of the recorded participant have arrived.
func (tk *Talker) Tracks() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.tracks
}

// Sent is the timeline from 0 to n: what the talker said (due to be sent) at each sample.
func (tk *Talker) Sent(n int) []int16 {
	out := make([]int16, n)
	for i := 0; i < n; i += len(tk.says) {
		copy(out[i:], tk.says)
	}
	return out
}

// placeWithin is how far apart in arrival packets may be and still share a placement: the
// offset between RTP time and the timeline is taken over this neighbourhood, not the
// whole recording, since it moves when the sender's clock skips (a microphone catching up
// after falling behind sends its later audio under the next timestamps) or its RTP time
// jumps (an SFU covering a pause).
const placeWithin = time.Second

// place returns where each packet's first sample goes on the timeline: its RTP time plus
// the smallest arrival-minus-RTP-time offset among the packets that arrived within
// placeWithin of it (the one that waited least), so the packets keep their sender's spacing
// whatever jitter they met. Also the end of what was heard, and how far the offsets moved
// over the recording (a figure for the logs).
func (tk *Talker) place() (at []int, end int, moved time.Duration) {
	q := make([]int, len(tk.packets))
	for i, p := range tk.packets {
		q[i] = Samples(p.at.Sub(tk.src.start)) - int(p.ts)
	}
	at = make([]int, len(tk.packets))
	lo, hi := math.MaxInt, math.MinInt
	j := 0 // first packet within placeWithin before packet i (arrivals are in order)
	for i, p := range tk.packets {
		for tk.packets[j].at.Before(p.at.Add(-placeWithin)) {
			j++
		}
		base := q[i]
		for k := j; k < len(tk.packets) && !tk.packets[k].at.After(p.at.Add(placeWithin)); k++ {
			base = min(base, q[k])
		}
		at[i] = base + int(p.ts)
		end = max(end, at[i]+len(p.pcm))
		lo, hi = min(lo, base), max(hi, base)
	}
	if len(at) > 0 {
		moved = Duration(hi - lo)
	}
	return at, end, moved
}

// HeardUntil is the end of what has been heard so far, on the timeline (0 before anything).
func (tk *Talker) HeardUntil() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	_, end, _ := tk.place()
	return end
}

// Heard is the timeline from 0 to n: what was heard from the recorded participant at each
// sample, silence where nothing was.
func (tk *Talker) Heard(n int) []int16 {
	out, _ := tk.heard(n)
	return out
}

// Placement is how far the offset between the recorded participant's RTP time and the
// timeline moved over the recording: 0 when its audio came at a steady pace.
func (tk *Talker) Placement() time.Duration {
	_, moved := tk.heard(0)
	return moved
}

func (tk *Talker) heard(n int) ([]int16, time.Duration) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	out := make([]int16, n)
	at, _, moved := tk.place()
	for k, p := range tk.packets {
		if i := at[k]; i >= 0 && i < n {
			copy(out[i:], p.pcm)
		} else if i < 0 && i+len(p.pcm) > 0 {
			copy(out, p.pcm[-i:])
		}
	}
	return out, moved
}

// HeardDBFS is the RMS level of what was heard in [from, to) (-300 for silence).
func (tk *Talker) HeardDBFS(from, to int) float64 {
	h := tk.Heard(to)[max(from, 0):]
	var e float64
	for _, v := range h {
		e += float64(v) * float64(v)
	}
	return dB(e / float64(max(len(h), 1)) / (32768 * 32768))
}

// Measure measures the echo of what the talker said in what it heard in [from, to) of
// the timeline (see the package function).
func (tk *Talker) Measure(from, to int, o Options) Result {
	return Measure(tk.Sent(to), tk.Heard(to), from, to, o)
}

// source is the talker's microphone: it gives says, looped, a 20 ms period at a time, each
// when it is due by the wall clock from the first read on (late reads are served at once,
// so the timeline never skips).
type source struct {
	says    []int16
	pos     int
	n       int64 // periods given
	start   time.Time
	started chan struct{} // closed at the first read; start is set
}

const period = Rate / 50

func (s *source) Format() hal.AudioFormat {
	return hal.AudioFormat{SampleRate: Rate, Channels: 1, FrameSamples: period}
}

func (s *source) ReadPCM(ctx context.Context, buf []int16) error {
	if s.n == 0 {
		s.start = time.Now()
		close(s.started)
	}
	due := s.start.Add(time.Duration(s.n+1) * 20 * time.Millisecond)
	if d := time.Until(due); d > 0 {
		tm := time.NewTimer(d)
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-tm.C:
		}
	}
	for i := range buf[:period] {
		buf[i] = s.says[s.pos]
		s.pos = (s.pos + 1) % len(s.says)
	}
	s.n++
	return nil
}

func (s *source) Close() error { return nil }
