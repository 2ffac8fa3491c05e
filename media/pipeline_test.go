package media

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4/pkg/media"

	"roombox/hal"
	"roombox/hal/sim"
)

// hookWriter keeps copies of the samples and calls hook (on the pipeline's goroutine)
// after each one.
type hookWriter struct {
	samples []media.Sample
	hook    func(i int, s media.Sample)
	err     error
}

func (w *hookWriter) WriteSample(s media.Sample) error {
	if w.err != nil {
		return w.err
	}
	s.Data = append([]byte(nil), s.Data...)
	w.samples = append(w.samples, s)
	if w.hook != nil {
		w.hook(len(w.samples)-1, s)
	}
	return nil
}

// hookCamera calls hook after each frame it reads.
type hookCamera struct {
	hal.Camera
	hook func(f *hal.Frame)
}

// SetFormat passes a change of mode to the camera underneath, a hal.FormatSetter.
func (c *hookCamera) SetFormat(ctx context.Context, f hal.VideoFormat) (hal.VideoFormat, error) {
	return c.Camera.(hal.FormatSetter).SetFormat(ctx, f)
}

func (c *hookCamera) ReadFrame(ctx context.Context, f *hal.Frame) error {
	if err := c.Camera.ReadFrame(ctx, f); err != nil {
		return err
	}
	if c.hook != nil {
		c.hook(f)
	}
	return nil
}

// cancelAtRead is cam calling cancel after its n-th frame; reads counts the frames.
func cancelAtRead(cam hal.Camera, n int, cancel func()) (c *hookCamera, reads *int) {
	reads = new(int)
	return &hookCamera{Camera: cam, hook: func(*hal.Frame) {
		if *reads++; *reads == n {
			cancel()
		}
	}}, reads
}

func simBoard(tb testing.TB, cfg sim.Config) *sim.Board {
	tb.Helper()
	b, err := sim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.HAL().Close() })
	return b
}

// oneLayer is a Video of one layer at the camera's size, encoded by enc.
func oneLayer(tb testing.TB, cam hal.Camera, enc hal.VideoEncoder, out SampleWriter) *Video {
	tb.Helper()
	f := cam.Format()
	v, err := NewVideo(cam, func(hal.EncoderConfig) (hal.VideoEncoder, error) { return enc, nil },
		[]LayerConfig{{Width: f.Width, Height: f.Height, Bitrate: 1_000_000, Out: out}})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func runUntilDone(t *testing.T, run func(context.Context) error, ctx context.Context) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx) }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its context ended")
	}
}

// The script: IDR first; a keyframe request makes the next frame an IDR; a bitrate change
// applies; with the camera off for 30 frames (one second) one black IDR is sent and none
// of the frames captured meanwhile ever appears in the stream; back on, the first frame
// is an IDR.
func TestVideoPipeline(t *testing.T) {
	const w, h = 320, 180
	b := simBoard(t, sim.Config{Width: w, Height: h, Clock: sim.NewInstantClock(t0)})
	enc := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: w, Height: h, Bitrate: 300_000, KeyInterval: 1000}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cam := &hookCamera{Camera: b.Camera}
	out := &hookWriter{}
	v := oneLayer(t, cam, enc, out)

	const black = 31  // the sample sent while the camera is off
	var seqs []uint64 // Seq of the frame captured for each sample
	var offFrom, offTo uint64
	cam.hook = func(f *hal.Frame) {
		if offFrom != 0 && offTo == 0 && f.Seq == offFrom+30 {
			offTo = f.Seq
			v.SetEnabled(true)
		}
	}
	out.hook = func(i int, s media.Sample) {
		seqs = append(seqs, v.frame.Seq)
		switch i {
		case 10:
			v.RequestKeyframe()
		case 20:
			if err := v.SetBitrate(150_000); err != nil {
				t.Error(err)
			}
		case 30:
			offFrom = v.frame.Seq + 1
			v.SetEnabled(false)
		case 50:
			cancel()
		}
	}
	runUntilDone(t, v.Run, ctx)

	if len(out.samples) != 51 {
		t.Fatalf("%d samples written, want 51", len(out.samples))
	}
	frame := time.Second / 30
	for i, s := range out.samples {
		idr := indexOf(nalTypes(s.Data), 5) >= 0
		wantIDR := i == 0 || i == 11 || i == black || i == black+1
		if idr != wantIDR {
			t.Errorf("sample %d: IDR=%v, want %v", i, idr, wantIDR)
		}
		want := frame
		if i == black+1 {
			want = 30 * frame // the black frame, then 29 captures dropped, then this one
		}
		if d := s.Duration - want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("sample %d: duration %v, want %v", i, s.Duration, want)
		}
	}

	// The same, end to end: decode the stream and read the stamps of what left.
	var stream []byte
	for _, s := range out.samples {
		stream = append(stream, s.Data...)
	}
	decoded := ffmpegGray(t, stream, w, h)
	if len(decoded) != len(out.samples) {
		t.Fatalf("decoded %d frames from %d samples", len(decoded), len(out.samples))
	}
	for i, y := range decoded {
		if i == black {
			if lo, hi := lumaRange(y); hi-lo > 2 {
				t.Errorf("frame sent while the camera was off has luma %d..%d, want uniform black", lo, hi)
			}
			if st, err := sim.DecodeStamp(y, w, w, h); err == nil {
				t.Errorf("frame sent while the camera was off carries capture %d", st.Seq)
			}
			continue
		}
		st, err := sim.DecodeStamp(y, w, w, h)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if st.Seq != seqs[i] || (st.Seq >= offFrom && st.Seq < offTo) {
			t.Fatalf("decoded frame %d is capture %d (sent as %d; camera off for %d..%d)", i, st.Seq, seqs[i], offFrom, offTo-1)
		}
	}
}

func lumaRange(y []byte) (lo, hi byte) {
	lo, hi = 255, 0
	for _, v := range y {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// Off from the start: one black frame per second of capture, and no camera frame.
func TestVideoOffFromStart(t *testing.T) {
	const w, h = 320, 180
	b := simBoard(t, sim.Config{Width: w, Height: h, Clock: sim.NewInstantClock(t0)})
	enc := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: w, Height: h}})
	ctx, cancel := context.WithCancel(context.Background())
	cam, reads := cancelAtRead(b.Camera, 100, cancel)
	out := &hookWriter{}
	v := oneLayer(t, cam, enc, out)
	v.SetEnabled(false)
	runUntilDone(t, v.Run, ctx)
	if *reads < 100 || len(out.samples) != 4 { // captures 1, 31, 61, 91
		t.Fatalf("camera off: %d frames read, %d samples written, want 4", *reads, len(out.samples))
	}
	var stream []byte
	for _, s := range out.samples {
		stream = append(stream, s.Data...)
	}
	for i, y := range ffmpegGray(t, stream, w, h) {
		if lo, hi := lumaRange(y); hi-lo > 2 || hi > 20 {
			t.Errorf("frame %d sent with the camera off has luma %d..%d, want black", i, lo, hi)
		}
	}
	if err := v.SetBitrate(0); err == nil {
		t.Fatal("zero bitrate accepted")
	}
}

func TestVideoRunStopsOnCancel(t *testing.T) {
	b := simBoard(t, sim.Config{Width: 320, Height: 180}) // real clock: paced at 30 fps
	enc := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: 320, Height: 180}})
	ctx, cancel := context.WithCancel(context.Background())
	out := &hookWriter{hook: func(i int, _ media.Sample) {
		if i == 2 {
			cancel()
		}
	}}
	runUntilDone(t, oneLayer(t, b.Camera, enc, out).Run, ctx)
}

func TestVideoRunErrors(t *testing.T) {
	b := simBoard(t, sim.Config{Width: 320, Height: 180, Clock: sim.NewInstantClock(t0)})
	enc := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: 320, Height: 180}})
	boom := errors.New("boom")
	err := oneLayer(t, b.Camera, enc, &hookWriter{err: boom}).Run(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("writer failure: %v", err)
	}
	_ = b.Camera.Close()
	err = oneLayer(t, b.Camera, enc, &hookWriter{}).Run(context.Background())
	if !errors.Is(err, hal.ErrClosed) {
		t.Fatalf("closed camera: %v", err)
	}
}

func TestVideoFrameAllocs(t *testing.T) {
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: 640, Height: 360}})
	v := oneLayer(t, b.Camera, enc, discard{})
	ctx := context.Background()
	step := func() {
		if err := v.next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		v.RequestKeyframe()
		step()
	}
	if n := testing.AllocsPerRun(100, step); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
}

func TestHandleRTCP(t *testing.T) {
	tests := []struct {
		name  string
		batch []rtcp.Packet
		want  bool
	}{
		{"PLI after a report", []rtcp.Packet{&rtcp.ReceiverReport{}, &rtcp.PictureLossIndication{MediaSSRC: 1}}, true},
		{"FIR", []rtcp.Packet{&rtcp.FullIntraRequest{MediaSSRC: 1}}, true},
		{"NACK only", []rtcp.Packet{&rtcp.TransportLayerNack{}}, false},
		{"reports only", []rtcp.Packet{&rtcp.ReceiverReport{}, &rtcp.SenderReport{}}, false},
	}
	cam := &stillCamera{}
	cam.f.Ensure(320, 180)
	for _, tc := range tests {
		l := oneLayer(t, cam, &nopEncoder{}, discard{}).Layer(0)
		l.keyframe.Store(false) // a new pipeline starts with a keyframe pending
		l.HandleRTCP(tc.batch)
		if got := l.keyframe.Load(); got != tc.want {
			t.Errorf("%s: keyframe requested = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestKeyframeRequestReachesEncoder: a PLI from RTCP makes the next frame an IDR.
func TestKeyframeRequestReachesEncoder(t *testing.T) {
	b := simBoard(t, sim.Config{Width: 320, Height: 180, Clock: sim.NewInstantClock(t0)})
	enc := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: 320, Height: 180, KeyInterval: 1000}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &hookWriter{}
	v := oneLayer(t, b.Camera, enc, out)
	out.hook = func(i int, s media.Sample) {
		switch i {
		case 5:
			v.Layer(0).HandleRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{}})
		case 6:
			cancel()
		}
	}
	runUntilDone(t, v.Run, ctx)
	if len(out.samples) != 7 || indexOf(nalTypes(out.samples[6].Data), 5) < 0 || indexOf(nalTypes(out.samples[5].Data), 5) >= 0 {
		t.Fatal("the frame after the PLI is not an IDR")
	}
}

// decodeAll decodes packets and returns the PCM per packet.
func decodeAll(t *testing.T, samples []media.Sample) [][]int16 {
	t.Helper()
	dec, err := NewOpusDecoder()
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]int16, len(samples))
	for i, s := range samples {
		if s.Duration != OpusFrameDuration {
			t.Fatalf("sample %d: duration %v", i, s.Duration)
		}
		pcm, err := dec.Decode(s.Data)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = append([]int16(nil), pcm...)
	}
	return out
}

func rmsDBFS(x []int16) float64 { return sim.DBFS(math.Sqrt(energy(x) / float64(len(x)))) }

// Muting replaces the captured audio with silence before encoding: the decoded stream is
// silent from the first frame encoded after SetMuted(true), but for the codec's memory of
// audio captured before the mute (its lookahead and energy smoothing, which fade out over
// the next two frames), and the tone returns after unmuting.
func TestAudioMute(t *testing.T) {
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc, err := NewOpusEncoder(32_000)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &hookWriter{}
	a, err := NewAudio(b.Mic, enc, out)
	if err != nil {
		t.Fatal(err)
	}
	out.hook = func(i int, _ media.Sample) {
		switch i {
		case 24:
			a.SetMuted(true)
		case 74:
			a.SetMuted(false)
		case 99:
			cancel()
		}
	}
	runUntilDone(t, a.Run, ctx)
	pcm := decodeAll(t, out.samples)
	if len(pcm) != 100 {
		t.Fatalf("%d samples", len(pcm))
	}
	for i, p := range pcm {
		db := rmsDBFS(p)
		switch {
		case i >= 5 && i < 25 || i >= 80:
			if db < -16 {
				t.Errorf("unmuted frame %d at %.1f dBFS", i, db)
			}
		case i == 25 || i == 26: // the codec's memory of audio captured before the mute
			t.Logf("muted frame %d: %.1f dBFS", i, db)
		case i > 26 && i < 75:
			if db > -90 {
				t.Errorf("muted frame %d at %.1f dBFS", i, db)
			}
		}
	}
}

func TestAudioMutedFromStart(t *testing.T) {
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc, err := NewOpusEncoder(32_000)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &hookWriter{hook: func(i int, _ media.Sample) {
		if i == 49 {
			cancel()
		}
	}}
	a, err := NewAudio(b.Mic, enc, out)
	if err != nil {
		t.Fatal(err)
	}
	a.SetMuted(true)
	runUntilDone(t, a.Run, ctx)
	var all []int16
	for _, p := range decodeAll(t, out.samples) {
		all = append(all, p...)
	}
	// Opus decodes digital silence to at most a few LSB of noise: below -90 dBFS.
	if len(all) != 50*OpusFrameSamples || rmsDBFS(all) > -90 {
		t.Fatalf("muted stream: %d samples, energy %v (%.1f dBFS)", len(all), energy(all), rmsDBFS(all))
	}
}

type fakeMic struct {
	hal.AudioIn
	format hal.AudioFormat
}

func (m fakeMic) Format() hal.AudioFormat { return m.format }

func TestAudioPipelineErrors(t *testing.T) {
	for _, f := range []hal.AudioFormat{{SampleRate: 48000, Channels: 1, FrameSamples: 7}, {SampleRate: 44110, Channels: 1, FrameSamples: 441}, {SampleRate: 48000, Channels: 1}} {
		if _, err := NewAudio(fakeMic{format: f}, nil, nil); err == nil {
			t.Errorf("format %+v accepted", f)
		}
	}
	b := simBoard(t, sim.Config{})
	enc, err := NewOpusEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	a, err := NewAudio(b.Mic, enc, &hookWriter{err: boom})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("writer failure: %v", err)
	}

	// Real clock: Run returns promptly once its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	a, err = NewAudio(b.Mic, enc, &hookWriter{hook: func(i int, _ media.Sample) {
		if i == 1 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	runUntilDone(t, a.Run, ctx)
}

func TestAudioFrameAllocs(t *testing.T) {
	b := simBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc, err := NewOpusEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAudio(b.Mic, enc, discard{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		if err := a.next(ctx); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
}

type discard struct{}

func (discard) WriteSample(media.Sample) error { return nil }

// countWriter ends the run after limit samples.
type countWriter struct {
	n, limit int
	cancel   func()
}

func (w *countWriter) WriteSample(media.Sample) error {
	if w.n++; w.n == w.limit {
		w.cancel()
	}
	return nil
}

// nopEncoder stands in for the encoder to show the pipeline's own cost.
type nopEncoder struct{ buf []byte }

func (e *nopEncoder) Encode(*hal.Frame, bool) (hal.EncodedFrame, error) {
	return hal.EncodedFrame{Data: e.buf}, nil
}
func (e *nopEncoder) SetBitrate(int) error { return nil }
func (e *nopEncoder) Close() error         { return nil }

// stillCamera delivers the same picture as fast as it is read, without copying it.
type stillCamera struct{ f hal.Frame }

func (c *stillCamera) Format() hal.VideoFormat {
	return hal.VideoFormat{Width: c.f.Width, Height: c.f.Height, FPS: 30}
}

func (c *stillCamera) ReadFrame(ctx context.Context, f *hal.Frame) error {
	*f = c.f
	return ctx.Err()
}
func (c *stillCamera) Close() error { return nil }

// BenchmarkVideoPipelineFrame is the whole per-frame path: simulated capture (rendering
// the test pattern), encode, write to a discarding writer ("x264"). "sim-camera" swaps
// the encoder for a no-op: the simulated camera's cost. "pipeline" also swaps the camera
// for a still picture: the pipeline's own overhead.
func BenchmarkVideoPipelineFrame(b *testing.B) {
	x264 := func(bps int) func(b *testing.B, w, h int) hal.VideoEncoder {
		return func(b *testing.B, w, h int) hal.VideoEncoder {
			return newX264(b, X264Config{EncoderConfig: hal.EncoderConfig{Width: w, Height: h, Bitrate: bps}})
		}
	}
	nop := func(*testing.B, int, int) hal.VideoEncoder { return &nopEncoder{buf: make([]byte, 2000)} }
	for _, c := range []struct {
		name  string
		w, h  int
		still bool
		enc   func(b *testing.B, w, h int) hal.VideoEncoder
	}{
		{"x264-360p", 640, 360, false, x264(500_000)},
		{"x264-720p", 1280, 720, false, x264(1_500_000)},
		{"sim-camera-360p", 640, 360, false, nop},
		{"sim-camera-720p", 1280, 720, false, nop},
		{"pipeline-720p", 1280, 720, true, nop},
	} {
		b.Run(c.name, func(b *testing.B) {
			board := simBoard(b, sim.Config{Width: c.w, Height: c.h, Clock: sim.NewInstantClock(t0)})
			var cam hal.Camera = board.Camera
			if c.still {
				still := &stillCamera{}
				if err := board.Camera.ReadFrame(context.Background(), &still.f); err != nil {
					b.Fatal(err)
				}
				cam = still
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			v := oneLayer(b, cam, c.enc(b, c.w, c.h), &countWriter{limit: b.N, cancel: cancel})
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			if err := v.Run(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/frame")
		})
	}
}

// BenchmarkAudioPipelineFrame is the whole per-frame path: simulated capture of two 10 ms
// periods, Opus encode, write to a discarding writer.
func BenchmarkAudioPipelineFrame(b *testing.B) {
	board := simBoard(b, sim.Config{Clock: sim.NewInstantClock(t0)})
	enc, err := NewOpusEncoder(32_000)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := NewAudio(board.Mic, enc, &countWriter{limit: b.N, cancel: cancel})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := a.Run(ctx); err != nil {
		b.Fatal(err)
	}
}
