package media

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media"

	"roombox/hal"
	"roombox/hal/sim"
)

func TestSimulcastLayers(t *testing.T) {
	for _, c := range []struct {
		w, h, bps, n int
		want         string
	}{
		{1280, 720, 2_310_000, 3, "[{f 1280 720 1700000} {h 640 360 450000} {q 320 180 160000}]"},
		{640, 360, 610_000, 2, "[{h 640 360 450000} {q 320 180 160000}]"},
		{1280, 720, 1_500_000, 1, "[{q 1280 720 1500000}]"},
		{40, 34, 100_000, 3, "[{f 40 34 73593} {h 20 16 19480} {q 16 16 6926}]"}, // halves stay even, and 16 or more
	} {
		layers, err := SimulcastLayers(c.w, c.h, c.bps, c.n)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range layers {
			got = append(got, fmt.Sprintf("{%s %d %d %d}", l.RID, l.Width, l.Height, l.Bitrate))
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("SimulcastLayers(%d, %d, %d, %d) = %v, want %s", c.w, c.h, c.bps, c.n, got, c.want)
		}
	}
	for _, c := range [][4]int{{1280, 720, 1_000_000, 0}, {1280, 720, 1_000_000, 4}, {1281, 720, 1_000_000, 2}, {14, 720, 1_000_000, 1}} {
		if _, err := SimulcastLayers(c[0], c[1], c[2], c[3]); err == nil {
			t.Errorf("SimulcastLayers%v accepted", c)
		}
	}
}

// simulcastSample is one sample a layer wrote, with the capture it was encoded from.
type simulcastSample struct {
	capture int // 1 for the first frame the camera delivered
	idr     bool
	at      int // where the sample starts in the layer's stream
}

// layerRecorder records a layer's samples and keeps its stream for the decoder.
type layerRecorder struct {
	captures *int
	samples  []simulcastSample
	stream   []byte
}

func (r *layerRecorder) WriteSample(s media.Sample) error {
	r.samples = append(r.samples, simulcastSample{*r.captures, indexOf(nalTypes(s.Data), 5) >= 0, len(r.stream)})
	r.stream = append(r.stream, s.Data...)
	return nil
}

// simulcastVideo is a three-layer Video of a 1280x720 simulated camera (instant clock: as
// fast as it encodes) through x264, each layer recorded, and hook called on the pipeline's
// goroutine after each capture, before that frame is encoded.
func simulcastVideo(t *testing.T, hook func(v *Video, capture int, f *hal.Frame)) (*Video, []*layerRecorder, *int) {
	t.Helper()
	b := simBoard(t, sim.Config{Width: 1280, Height: 720, Clock: sim.NewInstantClock(t0)})
	layers, err := SimulcastLayers(1280, 720, 2_310_000, 3)
	if err != nil {
		t.Fatal(err)
	}
	captures := new(int)
	recs := make([]*layerRecorder, len(layers))
	for i := range layers {
		recs[i] = &layerRecorder{captures: captures}
		layers[i].Out = recs[i]
	}
	var v *Video
	cam := &hookCamera{Camera: b.Camera, hook: func(f *hal.Frame) {
		*captures++
		hook(v, *captures, f)
	}}
	v, err = NewVideo(cam, OpenX264, layers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v, recs, captures
}

func encodedCounts(v *Video) []uint64 {
	n := make([]uint64, v.Layers())
	for i := range n {
		n[i] = v.Layer(i).Encoded()
	}
	return n
}

// The script, by capture: 1-10 all three layers; 11-20 h off (dynacast: nobody watches
// it); 21 h back; 26 a keyframe asked of q alone; 31-40 every layer off; 41-45 all back.
// Every layer's stream says its own size in its SPS and decodes whole; each layer has
// samples exactly from the captures it was on, and an IDR exactly at its start, when it
// came back, and when it alone was asked; with every layer off the camera is still read
// but nothing is scaled or encoded.
func TestSimulcastVideo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var atAllOff []uint64
	var seq30, scaledSeqAt40 [3]uint64
	v, recs, captures := simulcastVideo(t, func(v *Video, c int, f *hal.Frame) {
		switch c {
		case 11:
			v.Layer(1).SetEnabled(false)
		case 21:
			v.Layer(1).SetEnabled(true)
		case 26:
			v.Layer(2).RequestKeyframe()
		case 30:
			seq30[0] = f.Seq
		case 31:
			atAllOff = encodedCounts(v)
			for i := range v.Layers() {
				v.Layer(i).SetEnabled(false)
			}
		case 40:
			if n := encodedCounts(v); !slices.Equal(n, atAllOff) {
				t.Errorf("frames encoded per layer went from %v to %v with every layer off", atAllOff, n)
			}
			for i := 1; i < 3; i++ {
				scaledSeqAt40[i] = v.layers[i].scaler.out.Seq
			}
		case 41:
			for i := range v.Layers() {
				v.Layer(i).SetEnabled(true)
			}
		case 45:
			cancel()
		}
	})
	runUntilDone(t, v.Run, ctx)
	if *captures != 45 {
		t.Fatalf("%d captures, want 45", *captures)
	}
	for i := 1; i < 3; i++ {
		if scaledSeqAt40[i] != seq30[0] {
			t.Errorf("layer %d's last scaled picture at capture 40 is seq %d, want capture 30's %d: scaled while off", i, scaledSeqAt40[i], seq30[0])
		}
	}
	span := func(from, to int) []int {
		var s []int
		for c := from; c <= to; c++ {
			s = append(s, c)
		}
		return s
	}
	want := []struct {
		size     [2]int
		level    int
		captures []int
		idrs     []int
	}{
		{[2]int{1280, 720}, 31, slices.Concat(span(1, 30), span(41, 45)), []int{1, 41}},
		{[2]int{640, 360}, 30, slices.Concat(span(1, 10), span(21, 30), span(41, 45)), []int{1, 21, 41}},
		{[2]int{320, 180}, 13, slices.Concat(span(1, 30), span(41, 45)), []int{1, 26, 41}},
	}
	for i, w := range want {
		var got, idrs []int
		for _, s := range recs[i].samples {
			got = append(got, s.capture)
			if s.idr {
				idrs = append(idrs, s.capture)
			}
		}
		if !slices.Equal(got, w.captures) {
			t.Errorf("layer %d: samples from captures %v, want %v", i, got, w.captures)
		}
		if !slices.Equal(idrs, w.idrs) {
			t.Errorf("layer %d: IDRs at captures %v, want %v", i, idrs, w.idrs)
		}
		if n := v.Layer(i).Encoded(); n != uint64(len(w.captures)) {
			t.Errorf("layer %d: Encoded() = %d, want %d", i, n, len(w.captures))
		}
		sps := spsOf(t, recs[i].stream)
		if sps.Width != w.size[0] || sps.Height != w.size[1] || sps.Level != w.level {
			t.Errorf("layer %d (%s): SPS says %+v, want %dx%d level %d", i, v.Layer(i).Config().RID, sps, w.size[0], w.size[1], w.level)
		}
		if frames := ffmpegGray(t, recs[i].stream, w.size[0], w.size[1]); len(frames) != len(w.captures) {
			t.Errorf("layer %d: %d frames decoded from %d samples", i, len(frames), len(w.captures))
		}
		t.Logf("layer %d (%s): %dx%d level %d, %d samples, %d bytes", i, v.Layer(i).Config().RID, sps.Width, sps.Height, sps.Level, len(got), len(recs[i].stream))
	}
}

// With the camera off, every enabled layer sends the black frame once a second, and only it.
func TestSimulcastCameraOff(t *testing.T) {
	b := simBoard(t, sim.Config{Width: 640, Height: 360, Clock: sim.NewInstantClock(t0)})
	layers, err := SimulcastLayers(640, 360, 610_000, 2)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*hookWriter, len(layers))
	for i := range layers {
		recs[i] = &hookWriter{}
		layers[i].Out = recs[i]
	}
	ctx, cancel := context.WithCancel(context.Background())
	cam, _ := cancelAtRead(b.Camera, 61, cancel)
	v, err := NewVideo(cam, OpenX264, layers)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.SetEnabled(false)
	runUntilDone(t, v.Run, ctx)
	for i, l := range layers {
		if len(recs[i].samples) != 3 { // captures 1, 31, 61
			t.Fatalf("layer %d: %d samples in 61 captures with the camera off, want 3", i, len(recs[i].samples))
		}
		var stream []byte
		for _, s := range recs[i].samples {
			stream = append(stream, s.Data...)
		}
		for j, y := range ffmpegGray(t, stream, l.Width, l.Height) {
			if lo, hi := lumaRange(y); hi-lo > 2 || hi > 20 {
				t.Errorf("layer %d frame %d sent with the camera off has luma %d..%d, want black", i, j, lo, hi)
			}
		}
	}
}

// A divisor of 3 encodes captures 1, 4, 7, ...: a third of the frames, each lasting three
// capture intervals.
func TestVideoFrameRateDivisor(t *testing.T) {
	b := simBoard(t, sim.Config{Width: 320, Height: 180, Clock: sim.NewInstantClock(t0)})
	enc := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: 320, Height: 180}})
	ctx, cancel := context.WithCancel(context.Background())
	cam, _ := cancelAtRead(b.Camera, 30, cancel)
	out := &hookWriter{}
	v := oneLayer(t, cam, enc, out)
	if err := v.SetFrameRateDivisor(0); err == nil {
		t.Fatal("divisor 0 accepted")
	}
	if err := v.SetFrameRateDivisor(3); err != nil {
		t.Fatal(err)
	}
	runUntilDone(t, v.Run, ctx)
	if len(out.samples) != 10 {
		t.Fatalf("%d samples from 30 captures at divisor 3, want 10", len(out.samples))
	}
	for i, s := range out.samples[1:] {
		if s.Duration != 100_000_000 {
			t.Errorf("sample %d lasts %v, want 100ms", i+1, s.Duration)
		}
	}
}

// closeCounter counts the encoders NewVideo closes.
type closeCounter struct {
	*nopEncoder
	closed *int
}

func (e closeCounter) Close() error { *e.closed++; return nil }

func TestNewVideoErrors(t *testing.T) {
	cam := &stillCamera{}
	cam.f.Ensure(640, 360)
	opened, closed := 0, 0
	open := func(hal.EncoderConfig) (hal.VideoEncoder, error) {
		opened++
		return closeCounter{nopEncoder: &nopEncoder{}, closed: &closed}, nil
	}
	l := func(w, h int) LayerConfig { return LayerConfig{Width: w, Height: h, Bitrate: 100_000, Out: discard{}} }
	for name, layers := range map[string][]LayerConfig{
		"none":             nil,
		"four":             {l(640, 360), l(320, 180), l(160, 90), l(80, 46)},
		"above the camera": {l(1280, 720)},
		"growing":          {l(320, 180), l(640, 360)},
		"odd":              {l(640, 360), l(321, 180)},
		"no writer":        {l(640, 360), {Width: 320, Height: 180, Bitrate: 1}},
	} {
		opened, closed = 0, 0
		if v, err := NewVideo(cam, open, layers); err == nil {
			_ = v.Close()
			t.Errorf("%s: accepted", name)
		} else if opened != closed {
			t.Errorf("%s: %d encoders opened, %d closed (%v)", name, opened, closed, err)
		}
	}
	boom := errors.New("boom")
	opened, closed = 0, 0
	_, err := NewVideo(cam, func(c hal.EncoderConfig) (hal.VideoEncoder, error) {
		if c.Width < 640 {
			return nil, boom
		}
		return open(c)
	}, []LayerConfig{l(640, 360), l(320, 180)})
	if !errors.Is(err, boom) || opened != 1 || closed != 1 {
		t.Fatalf("second encoder failing: %v, %d opened, %d closed", err, opened, closed)
	}
}

// simulcastStep is a three-layer 720p Video stepped one frame at a time, warmed up.
func simulcastStep(tb testing.TB, w, h int, cam hal.Camera) func() {
	layers, err := SimulcastLayers(w, h, 2_310_000, 3)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range layers {
		layers[i].Out = discard{}
	}
	v, err := NewVideo(cam, OpenX264, layers)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = v.Close() })
	ctx := context.Background()
	step := func() {
		if err := v.next(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	for range 10 { // size every buffer: scalers' pictures, encoders' outputs on IDRs
		v.RequestKeyframe()
		step()
	}
	return step
}

func TestSimulcastFrameAllocs(t *testing.T) {
	b := simBoard(t, sim.Config{Width: 1280, Height: 720, Clock: sim.NewInstantClock(t0)})
	step := simulcastStep(t, 1280, 720, b.Camera)
	if n := testing.AllocsPerRun(30, step); n != 0 {
		t.Fatalf("%v allocations per three-layer frame", n)
	}
}

// BenchmarkSimulcastFrame is one 720p30 frame in three layers (1280x720, 640x360, 320x180
// at 1.7 Mbit/s, 450 and 160 kbit/s): capture of the simulated camera ("sim-camera"), or
// a still picture ("still": the scaling and encoding alone), two scales, three x264 encodes.
func BenchmarkSimulcastFrame(b *testing.B) {
	for _, still := range []bool{false, true} {
		name := "sim-camera"
		if still {
			name = "still"
		}
		b.Run(name, func(b *testing.B) {
			board := simBoard(b, sim.Config{Width: 1280, Height: 720, Clock: sim.NewInstantClock(t0)})
			var cam hal.Camera = board.Camera
			if still {
				s := &stillCamera{}
				if err := board.Camera.ReadFrame(context.Background(), &s.f); err != nil {
					b.Fatal(err)
				}
				cam = s
			}
			step := simulcastStep(b, 1280, 720, cam)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for range b.N {
				step()
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/frame")
		})
	}
}

// slowEncoder takes at least d per frame, as a slow board's encoder would.
type slowEncoder struct {
	*nopEncoder
	d time.Duration
}

func (e slowEncoder) Encode(f *hal.Frame, key bool) (hal.EncodedFrame, error) {
	time.Sleep(e.d)
	return e.nopEncoder.Encode(f, key)
}

// Busy counts the time spent encoding: 10 frames through an encoder that takes 5 ms each
// add at least 50 ms; with the frame rate divided by 2, half the frames are encoded.
func TestVideoBusy(t *testing.T) {
	for _, tc := range []struct {
		divisor int
		least   time.Duration
	}{{1, 50 * time.Millisecond}, {2, 25 * time.Millisecond}} {
		b := simBoard(t, sim.Config{Width: 320, Height: 180, Clock: sim.NewInstantClock(t0)})
		ctx, cancel := context.WithCancel(context.Background())
		cam, _ := cancelAtRead(b.Camera, 10, cancel)
		v := oneLayer(t, cam, slowEncoder{&nopEncoder{buf: []byte{0, 0, 0, 1, 0x65}}, 5 * time.Millisecond}, &hookWriter{})
		if err := v.SetFrameRateDivisor(tc.divisor); err != nil {
			t.Fatal(err)
		}
		runUntilDone(t, v.Run, ctx)
		if got := v.Busy(); got < tc.least || got > 4*tc.least+time.Second {
			t.Errorf("divisor %d: Busy after 10 captures = %v, want at least %v", tc.divisor, got, tc.least)
		}
	}
}

// The script, by capture: 5 asks for 640x360 at 15 fps; 10 asks for a size the camera does
// not have; 15 ends. From capture 6 every layer is half its size, starts with an IDR and says
// so in its SPS; the refused change reports its error, keeps the capture and sends no IDR.
func TestVideoReconfigure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type done struct {
		f    hal.VideoFormat
		cfgs []LayerConfig
		err  error
	}
	var dones []done
	plan := func(f hal.VideoFormat) ([]LayerConfig, error) { return SimulcastLayers(f.Width, f.Height, 610_000, 3) }
	record := func(f hal.VideoFormat, cfgs []LayerConfig, err error) { dones = append(dones, done{f, cfgs, err}) }
	v, recs, captures := simulcastVideo(t, func(v *Video, c int, f *hal.Frame) {
		switch c {
		case 5:
			v.Reconfigure(Reformat{Format: hal.VideoFormat{Width: 640, Height: 360, FPS: 15}, Layers: plan, Done: record})
		case 10:
			v.Reconfigure(Reformat{Format: hal.VideoFormat{Width: 641, Height: 360, FPS: 15}, Layers: plan, Done: record})
		case 15:
			cancel()
		}
	})
	runUntilDone(t, v.Run, ctx)
	if *captures != 15 || len(dones) != 2 {
		t.Fatalf("%d captures, %d changes done; want 15 and 2", *captures, len(dones))
	}
	want := hal.VideoFormat{Width: 640, Height: 360, FPS: 15}
	if d := dones[0]; d.err != nil || d.f != want || d.cfgs[0].Width != 640 || d.cfgs[2].Height != 90 || d.cfgs[1].RID != "h" || d.cfgs[1].Out == nil {
		t.Fatalf("first change: %+v", d)
	}
	if d := dones[1]; d.err == nil || d.f != want || d.cfgs[0].Width != 640 {
		t.Fatalf("refused change: format %v, layers %+v, err %v; want an error and %v kept", d.f, d.cfgs, d.err, want)
	}
	for i, size := range [][2]int{{640, 360}, {320, 180}, {160, 90}} {
		var idrs []int
		from := -1
		for _, s := range recs[i].samples {
			if s.idr {
				idrs = append(idrs, s.capture)
			}
			if s.capture == 6 {
				from = s.at
			}
		}
		if !slices.Equal(idrs, []int{1, 6}) || from < 0 {
			t.Fatalf("layer %d: IDRs at captures %v (want 1 and 6), capture 6 sent: %v", i, idrs, from >= 0)
		}
		if sps := spsOf(t, recs[i].stream[from:]); sps.Width != size[0] || sps.Height != size[1] {
			t.Errorf("layer %d after the change: SPS says %dx%d, want %dx%d", i, sps.Width, sps.Height, size[0], size[1])
		}
		if c := v.Layer(i).Config(); c.Width != size[0] || c.Height != size[1] {
			t.Errorf("layer %d: Config %dx%d, want %dx%d", i, c.Width, c.Height, size[0], size[1])
		}
	}
}
