package media

import (
	"context"
	"encoding/binary"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"

	"roombox/hal"
	"roombox/hal/sim"
	"roombox/internal/testkit/testwait"
)

// The sim microphone's tone, a sine peaking at -10 dBFS, is what the remote tracks send.
const sentToneDBFS = -10.0

// firstSeq makes the sequence numbers wrap within the first second.
const firstSeq = 65500

// The playback runs on its own goroutines; the test waits for it often (every step of the
// fake clock), so it polls briskly.
const (
	playbackWait = 10 * time.Second
	playbackPoll = 50 * time.Microsecond
)

// tonePackets returns n 20 ms Opus packets of the sim microphone's tone at hz.
func tonePackets(tb testing.TB, hz float64, n int) [][]byte {
	tb.Helper()
	enc, err := NewOpusEncoder(32_000)
	if err != nil {
		tb.Fatal(err)
	}
	var pkts [][]byte
	for _, f := range toneFrames(tb, hz, n) {
		pkt, err := enc.Encode(f)
		if err != nil {
			tb.Fatal(err)
		}
		pkts = append(pkts, append([]byte(nil), pkt...))
	}
	return pkts
}

// rtpPacket marshals one packet of a remote Opus track.
func rtpPacket(tb testing.TB, seq uint16, payload []byte) []byte {
	tb.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq,
		Timestamp: uint32(seq) * OpusFrameSamples, SSRC: 0x5eed}, Payload: payload}).Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func toneDBFS(x []int16, hz float64) float64 { return sim.ToneDBFS(x, hz, OpusSampleRate) }

// remoteTrack is a remote track the test hands packets to one at a time, as the network
// would: send returns once the playback's reader has buffered the packet (it has come
// back to Read for the next one).
type remoteTrack struct {
	tb      testing.TB
	pkts    [][]byte // Opus packets, in order
	i       int      // the next one to send or lose
	in      chan []byte
	reads   atomic.Int64 // Read calls begun
	sent    int64
	stop    sync.Once
	stopped chan struct{} // closed by SetReadDeadline
}

func newRemoteTrack(tb testing.TB, hz float64, packets int) *remoteTrack {
	return &remoteTrack{tb: tb, pkts: tonePackets(tb, hz, packets), in: make(chan []byte), stopped: make(chan struct{})}
}

func (r *remoteTrack) Read(b []byte) (int, interceptor.Attributes, error) {
	r.reads.Add(1)
	select {
	case pkt, ok := <-r.in:
		if !ok {
			return 0, nil, io.EOF
		}
		return copy(b, pkt), nil, nil
	case <-r.stopped:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// SetReadDeadline ends blocked and future reads, whatever the time: Playback sets one
// only to stop.
func (r *remoteTrack) SetReadDeadline(time.Time) error {
	r.stop.Do(func() { close(r.stopped) })
	return nil
}

// send delivers the next packet and waits until it is buffered.
func (r *remoteTrack) send() {
	r.tb.Helper()
	pkt := rtpPacket(r.tb, uint16(firstSeq+r.i), r.pkts[r.i%len(r.pkts)])
	r.i++
	select {
	case r.in <- pkt:
	case <-time.After(10 * time.Second):
		r.tb.Fatal("the playback never read the track")
	}
	r.sent++
	testwait.ForEvery(r.tb, "the packet to be buffered", playbackWait, playbackPoll, func() bool { return r.reads.Load() > r.sent })
}

// lose skips the next packet, as a lossy network would.
func (r *remoteTrack) lose() { r.i++ }

// end ends the track, as pion does when the remote unpublishes.
func (r *remoteTrack) end() { close(r.in) }

// rig runs a Playback into a sim speaker paced by a fake clock, one period at a time, so
// what each period holds does not depend on scheduling.
type rig struct {
	t      *testing.T
	clock  *sim.FakeClock
	spk    *sim.Speaker
	pb     *Playback
	writes uint64
}

func newRig(t *testing.T) *rig {
	t.Helper()
	clock := sim.NewFakeClock(t0)
	b := simBoard(t, sim.Config{Clock: clock, SpeakerRecord: 10 * time.Second})
	pb, err := NewPlayback(b.Speaker)
	if err != nil {
		t.Fatal(err)
	}
	testwait.Go(t, "Run", time.Minute, pb.Run)
	r := &rig{t: t, clock: clock, spk: b.Speaker, pb: pb, writes: 1}
	r.settle() // the first period is written at once
	return r
}

// add adds tracks and lets a period pass: Run starts their readers as it mixes the next.
func (r *rig) add(tracks ...*remoteTrack) {
	r.t.Helper()
	for _, tr := range tracks {
		if err := r.pb.AddTrack(tr); err != nil {
			r.t.Fatal(err)
		}
	}
	r.tick()
}

// settle waits until the playback has written r.writes periods and waits on the clock to
// write the next (which it has mixed already).
func (r *rig) settle() {
	r.t.Helper()
	testwait.ForEvery(r.t, "the playback to wait for the next period", playbackWait, playbackPoll, func() bool {
		return r.spk.Writes() == r.writes && r.clock.Waiters() == 1
	})
}

// tick lets one 10 ms period play.
func (r *rig) tick() {
	r.t.Helper()
	r.clock.Advance(sim.PeriodSamples * time.Second / sim.SampleRate)
	r.writes++
	r.settle()
}

// play runs d of speaker time, a multiple of 20 ms, sending one packet of each track
// every 20 ms.
func (r *rig) play(d time.Duration, tracks ...*remoteTrack) {
	r.t.Helper()
	for range d / OpusFrameDuration {
		for _, tr := range tracks {
			tr.send()
		}
		r.tick()
		r.tick()
	}
}

// last returns the last d of what the speaker played.
func (r *rig) last(d time.Duration) []int16 {
	rec := r.spk.Recording()
	n := int(d.Seconds() * sim.SampleRate)
	if len(rec) < n {
		r.t.Fatalf("only %d samples played, want %d", len(rec), n)
	}
	return rec[len(rec)-n:]
}

// window is 200 ms: a whole number of cycles of 440 and 660 Hz, so Goertzel reads them
// without leakage.
const window = 200 * time.Millisecond

// readers counts the goroutines reading tracks for a Playback.
func readers() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "media.(*Playback).read(")
}

func TestPlaybackPlaysTrack(t *testing.T) {
	r := newRig(t)
	a := newRemoteTrack(t, 440, 50)
	r.add(a)
	r.play(time.Second, a)
	got := r.last(window)
	lvl := toneDBFS(got, 440)
	t.Logf("440 Hz sent at %.1f dBFS, played at %.2f dBFS; 660 Hz at %.1f dBFS", sentToneDBFS, lvl, toneDBFS(got, 660))
	if math.Abs(lvl-sentToneDBFS) > 1 {
		t.Errorf("440 Hz played at %.2f dBFS, want %.0f±1 (volume 100 is unity gain)", lvl, sentToneDBFS)
	}
	if other := toneDBFS(got, 660); other > lvl-40 {
		t.Errorf("660 Hz at %.1f dBFS in a 440 Hz track", other)
	}
}

func TestPlaybackMixesTracks(t *testing.T) {
	r := newRig(t)
	a, b := newRemoteTrack(t, 440, 50), newRemoteTrack(t, 660, 50)
	r.add(a, b)
	r.play(time.Second, a, b)
	if n := r.pb.Tracks(); n != 2 {
		t.Fatalf("%d tracks playing, want 2", n)
	}
	got := r.last(window)
	for _, hz := range []float64{440, 660} {
		lvl := toneDBFS(got, hz)
		t.Logf("%g Hz played at %.2f dBFS", hz, lvl)
		if math.Abs(lvl-sentToneDBFS) > 1 {
			t.Errorf("%g Hz played at %.2f dBFS in the mix, want %.0f±1", hz, lvl, sentToneDBFS)
		}
	}
}

func TestPlaybackVolume(t *testing.T) {
	r := newRig(t)
	a := newRemoteTrack(t, 440, 50)
	r.add(a)
	r.play(600*time.Millisecond, a)
	full := toneDBFS(r.last(window), 440)
	for _, v := range []int{50, 10, 90} {
		r.pb.SetVolume(v)
		r.play(400*time.Millisecond, a)
		got := toneDBFS(r.last(window), 440) - full
		want := -volumeRangeDB * float64(MaxVolume-v) / MaxVolume
		t.Logf("volume %d: %.2f dB relative to volume 100 (want %.1f)", v, got, want)
		if math.Abs(got-want) > 0.2 {
			t.Errorf("volume %d plays %.2f dB relative to volume 100, want %.1f", v, got, want)
		}
	}
	r.pb.SetVolume(0)
	r.play(100*time.Millisecond, a)
	if e := energy(r.last(50 * time.Millisecond)); e != 0 {
		t.Errorf("volume 0 played energy %g, want silence", e)
	}
}

func TestPlaybackMute(t *testing.T) {
	r := newRig(t)
	a := newRemoteTrack(t, 440, 50)
	r.add(a)
	r.play(600*time.Millisecond, a)
	r.pb.SetMuted(true)
	// Two periods are on their way when the mute is set: the one mixed already and the
	// one ramping down. Everything after them is silence, and silence keeps being written.
	writes := r.spk.Writes()
	r.play(20*time.Millisecond, a)
	r.play(500*time.Millisecond, a)
	if e := energy(r.last(500 * time.Millisecond)); e != 0 {
		t.Errorf("muted speaker played energy %g (peak %.1f dBFS), want none", e, r.spk.Peak())
	}
	if w := r.spk.Writes() - writes; w != 52 {
		t.Errorf("%d periods written while muted, want 52: the speaker's clock keeps running", w)
	}
	r.pb.SetMuted(false)
	r.play(400*time.Millisecond, a)
	if lvl := toneDBFS(r.last(window), 440); math.Abs(lvl-sentToneDBFS) > 1 {
		t.Errorf("after unmute 440 Hz plays at %.2f dBFS, want %.0f±1", lvl, sentToneDBFS)
	}
}

// maxStep is the largest sample-to-sample jump in x: a click shows as a jump far above a
// smooth tone's.
func maxStep(x []int16) int {
	m := 0
	for i := 1; i < len(x); i++ {
		m = max(m, abs(int(x[i])-int(x[i-1])))
	}
	return m
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// longestZeroRun is the longest run of zero samples in x.
func longestZeroRun(x []int16) int {
	longest, run := 0, 0
	for _, v := range x {
		if v != 0 {
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	return longest
}

func TestPlaybackConcealsLoss(t *testing.T) {
	r := newRig(t)
	a := newRemoteTrack(t, 440, 50)
	r.add(a)
	r.play(600*time.Millisecond, a)
	clean := r.last(400 * time.Millisecond)
	// One packet lost, then three in a row (maxConceal is 5).
	a.lose()
	r.tick()
	r.tick()
	r.play(100*time.Millisecond, a)
	for range 3 {
		a.lose()
		r.tick()
		r.tick()
	}
	r.play(300*time.Millisecond, a)
	lossy := r.last(500 * time.Millisecond)
	// A 440 Hz sine at -10 dBFS moves at most 597 per sample.
	smooth := maxStep(clean)
	step, zeros := maxStep(lossy), longestZeroRun(lossy)
	t.Logf("largest step: %d without loss, %d with; longest zero run %d samples; 440 Hz at %.2f dBFS",
		smooth, step, zeros, toneDBFS(lossy[:sim.SampleRate/5], 440))
	if step > 2*smooth {
		t.Errorf("a step of %d across the losses, twice the clean tone's %d: a click", step, smooth)
	}
	if zeros > 2 {
		t.Errorf("%d zero samples in a row: a gap where the loss was", zeros)
	}
}

func TestPlaybackTrackEnds(t *testing.T) {
	before := readers()
	r := newRig(t)
	a, b := newRemoteTrack(t, 440, 50), newRemoteTrack(t, 660, 50)
	r.add(a, b)
	r.play(400*time.Millisecond, a, b)
	if n := readers(); n != before+2 {
		t.Fatalf("%d track readers running, want %d", n, before+2)
	}
	b.end()
	testwait.ForEvery(t, "the ended track to be removed", playbackWait, playbackPoll, func() bool { return r.pb.Tracks() == 1 })
	testwait.ForEvery(t, "its reader to stop", playbackWait, playbackPoll, func() bool { return readers() == before+1 })
	r.play(400*time.Millisecond, a)
	got := r.last(window)
	if lvl := toneDBFS(got, 440); math.Abs(lvl-sentToneDBFS) > 1 {
		t.Errorf("the remaining track plays at %.2f dBFS, want %.0f±1", lvl, sentToneDBFS)
	}
	if lvl := toneDBFS(got, 660); lvl > -60 {
		t.Errorf("the ended track still plays at %.1f dBFS", lvl)
	}
}

func TestPlaybackRunStopsReaders(t *testing.T) {
	before := readers()
	clock := sim.NewFakeClock(t0)
	b := simBoard(t, sim.Config{Clock: clock})
	pb, err := NewPlayback(b.Speaker)
	if err != nil {
		t.Fatal(err)
	}
	a := newRemoteTrack(t, 440, 1)
	if err := pb.AddTrack(a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The open track's Read never returns by itself: Run must stop it.
	runUntilDone(t, func(ctx context.Context) error {
		go func() {
			testwait.ForEvery(t, "the reader to start", playbackWait, playbackPoll, func() bool { return a.reads.Load() > 0 })
			cancel()
		}()
		return pb.Run(ctx)
	}, ctx)
	if n := readers(); n != before {
		t.Errorf("%d track readers left after Run returned", n-before)
	}
	if err := pb.AddTrack(newRemoteTrack(t, 440, 1)); err != ErrPlaybackStopped {
		t.Errorf("AddTrack after Run: %v, want ErrPlaybackStopped", err)
	}
}

// memOut is a speaker that keeps its last period.
type memOut struct {
	format hal.AudioFormat
	last   []int16
}

func (o *memOut) Format() hal.AudioFormat { return o.format }
func (o *memOut) WritePCM(_ context.Context, buf []int16) error {
	o.last = append(o.last[:0], buf...)
	return nil
}
func (o *memOut) Close() error { return nil }

// testTrack feeds a track of a Playback directly, with no reader goroutine: for the
// stereo check, allocation counts and benchmarks, where a period's work is all there is.
type testTrack struct {
	tb   testing.TB
	t    *track
	pkts [][]byte // RTP packets; each is sent with the next sequence number
	seq  uint16
}

func newTestTrack(tb testing.TB, pb *Playback, hz float64) *testTrack {
	tb.Helper()
	if err := pb.AddTrack(nil); err != nil {
		tb.Fatal(err)
	}
	t := pb.pending[0]
	pb.tracks, pb.pending = append(pb.tracks, t), pb.pending[:0]
	tt := &testTrack{tb: tb, t: t, seq: firstSeq}
	for _, p := range tonePackets(tb, hz, 50) {
		tt.pkts = append(tt.pkts, rtpPacket(tb, 0, p))
	}
	return tt
}

// receive hands the track its next packet, as its reader would.
func (tt *testTrack) receive() {
	pkt := tt.pkts[int(tt.seq)%len(tt.pkts)]
	binary.BigEndian.PutUint16(pkt[2:], tt.seq)
	tt.seq++
	tt.t.receive(pkt)
}

// feed runs a Playback's periods directly, with a packet of every track each 20 ms (every
// other 10 ms period).
type feed struct {
	pb     *Playback
	tracks []*testTrack
	n      int // periods run
}

func newFeed(tb testing.TB, pb *Playback, hz ...float64) *feed {
	f := &feed{pb: pb}
	for _, h := range hz {
		f.tracks = append(f.tracks, newTestTrack(tb, pb, h))
	}
	f.periods(20) // buffered and playing
	return f
}

func (f *feed) periods(n int) {
	for range n {
		if f.n%2 == 0 {
			for _, tt := range f.tracks {
				tt.receive()
			}
		}
		f.n++
		f.pb.mixPeriod()
	}
}

func newMemPlayback(tb testing.TB, channels int) *Playback {
	tb.Helper()
	pb, err := NewPlayback(&memOut{format: hal.AudioFormat{SampleRate: OpusSampleRate, Channels: channels, FrameSamples: 480}})
	if err != nil {
		tb.Fatal(err)
	}
	return pb
}

func TestPlaybackFormats(t *testing.T) {
	if _, err := NewPlayback(&memOut{format: hal.AudioFormat{SampleRate: 44100, Channels: 2, FrameSamples: 441}}); err == nil {
		t.Error("a 44.1 kHz speaker accepted without a resampler")
	}
	// A stereo speaker gets the mono mix on both channels.
	pb := newMemPlayback(t, 2)
	newFeed(t, pb, 440)
	left, right := make([]int16, 480), make([]int16, 480)
	for i := range left {
		left[i], right[i] = pb.buf[2*i], pb.buf[2*i+1]
	}
	if lvl := toneDBFS(left, 440); math.Abs(lvl-sentToneDBFS) > 1.5 || !slices.Equal(left, right) {
		t.Errorf("stereo speaker: 440 Hz at %.1f dBFS on the left, channels equal: %v", lvl, slices.Equal(left, right))
	}
}

func TestPlaybackPeriodAllocs(t *testing.T) {
	f := newFeed(t, newMemPlayback(t, 1), 440, 660)
	// Each run is two periods: a packet per track is received, decoded and mixed.
	if n := testing.AllocsPerRun(100, func() { f.periods(2) }); n != 0 {
		t.Fatalf("%v allocations per 20 ms of two tracks", n)
	}
	// A concealed loss allocates nothing either.
	if n := testing.AllocsPerRun(50, func() {
		for _, tt := range f.tracks {
			tt.seq++ // lost
		}
		f.periods(4)
	}); n != 0 {
		t.Fatalf("%v allocations per loss", n)
	}
}

// benchmarkPlayback reports the CPU one 10 ms period costs with n tracks: receiving half a
// packet per track, decoding, mixing, gain.
func benchmarkPlayback(b *testing.B, n int) {
	hz := []float64{440, 660, 550, 770}
	f := newFeed(b, newMemPlayback(b, 1), hz[:n]...)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		f.periods(1)
	}
	perPeriod := float64(cpuTime()-cpu0) / float64(b.N)
	b.ReportMetric(perPeriod, "cpu-ns/period")
	b.ReportMetric(perPeriod/float64(10*time.Millisecond)*100, "%cpu")
}

func BenchmarkPlayback1Track(b *testing.B)  { benchmarkPlayback(b, 1) }
func BenchmarkPlayback4Tracks(b *testing.B) { benchmarkPlayback(b, 4) }

// TestJitterBuffer drives one track's buffer directly: what each turn plays, by the
// sequence number each packet carries as its payload.
func TestJitterBuffer(t *testing.T) {
	tr := &track{pkt: make([]byte, 0, maxOpusPacket), fec: make([]byte, 0, maxOpusPacket)}
	push := func(seqs ...uint16) {
		for _, s := range seqs {
			tr.push(s, []byte{byte(s)})
		}
	}
	// turns returns what the next n turns play: "p<seq>", "lost" (with "+fec<seq>" when
	// the next packet is there for FEC), "skip" or "wait".
	turns := func(n int) string {
		var out []string
		for range n {
			switch tr.take() {
			case takePacket:
				out = append(out, "p"+strconv.Itoa(int(tr.pkt[0])))
			case takeLost:
				s := "lost"
				if len(tr.fec) > 0 {
					s += "+fec" + strconv.Itoa(int(tr.fec[0]))
				}
				out = append(out, s)
			case takeSkip:
				out = append(out, "skip")
			case takeWait:
				out = append(out, "wait")
			}
		}
		return strings.Join(out, " ")
	}
	check := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}

	push(65534)
	check("one packet is not enough to start", turns(1), "wait")
	push(0, 65535) // reordered, across the wrap
	check("reordered", turns(3), "p254 p255 p0")
	push(2)
	check("a loss is concealed with the next packet's FEC", turns(2), "lost+fec2 p2")
	check("a stalled track conceals, then pauses", turns(maxConceal+1), "lost lost lost lost lost wait")
	push(3) // its turn was concealed: late
	push(9, 10)
	check("a late packet is dropped; after a pause the track restarts at its oldest", turns(3), "p9 p10 lost")
	tr.push(12, nil)
	push(13)
	check("padding takes its turn without a loss", turns(2), "skip p13")
	for s := uint16(14); s <= 24; s++ {
		push(s)
	}
	check("an overflow keeps the newest packets", turns(5), "p21 p22 p23 p24 lost")
	push(65521, 65522) // far behind: the stream restarted
	check("a restarted stream plays", turns(2), "p241 p242")
}
