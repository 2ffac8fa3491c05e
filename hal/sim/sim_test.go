package sim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"roombox/hal"
	"roombox/hal/sim"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newBoard(t testing.TB, cfg sim.Config) *sim.Board {
	t.Helper()
	b, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.HAL().Close() })
	return b
}

func TestStampRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range [][2]int{{1280, 720}, {640, 360}, {320, 180}, {128, 72}, {1920, 1080}} {
		var f hal.Frame
		f.Ensure(size[0], size[1])
		for i := range f.Y {
			f.Y[i] = byte(rng.Uint32())
		}
		for i := range 500 {
			s := sim.Stamp{Seq: rng.Uint64(), Captured: time.Unix(0, rng.Int64()-rng.Int64())}
			switch i {
			case 0:
				s = sim.Stamp{Captured: time.Unix(0, 0)}
			case 1:
				s = sim.Stamp{Seq: math.MaxUint64, Captured: time.Unix(0, math.MaxInt64)}
			}
			sim.EncodeStamp(&f, s)
			got, err := sim.DecodeStamp(f.Y, f.StrideY, f.Width, f.Height)
			if err != nil {
				t.Fatalf("%dx%d: %v", size[0], size[1], err)
			}
			if got.Seq != s.Seq || !got.Captured.Equal(s.Captured) {
				t.Fatalf("%dx%d: decoded %+v, want %+v", size[0], size[1], got, s)
			}
		}
	}
}

func TestStampLayout(t *testing.T) {
	for w, want := range map[int]int{128: 2, 320: 4, 640: 10, 1280: 16, 1920: 16, 700: 10, 200: 2} {
		if got := sim.StampCell(w); got != want {
			t.Errorf("StampCell(%d) = %d, want %d", w, got, want)
		}
	}
	var f hal.Frame
	f.Ensure(640, 360)
	clear(f.U)
	sim.EncodeStamp(&f, sim.Stamp{Seq: 1 << 63, Captured: time.Unix(0, 1)})
	// Row 0, cell 0 is the MSB of Seq (white); cell 1 is black. Row 1, cell 63 is 1.
	for _, c := range []struct {
		x, y int
		want byte
	}{{5, 5, 235}, {15, 5, 16}, {635, 15, 235}, {625, 15, 16}} {
		if got := f.Y[c.y*f.StrideY+c.x]; got != c.want {
			t.Errorf("Y(%d,%d) = %d, want %d", c.x, c.y, got, c.want)
		}
	}
	if f.U[14*f.StrideUV+319] != 128 || f.V[0] != 128 || f.U[15*f.StrideUV] != 0 {
		t.Error("chroma under the block is not 128, or the block's chroma spills over")
	}
}

func TestStampRejectsDamage(t *testing.T) {
	var f hal.Frame
	f.Ensure(640, 360)
	for i := range f.Y {
		f.Y[i] = 128
	}
	if _, err := sim.DecodeStamp(f.Y, f.StrideY, f.Width, f.Height); !errors.Is(err, sim.ErrStampCheck) {
		t.Fatalf("grey picture: err = %v, want ErrStampCheck", err)
	}
	sim.EncodeStamp(&f, sim.Stamp{Seq: 7, Captured: t0})
	f.Y[5*f.StrideY+3*10+5] ^= 0xff // flip one Seq cell's centre
	f.Y[5*f.StrideY+3*10+4] ^= 0xff
	f.Y[4*f.StrideY+3*10+5] ^= 0xff
	f.Y[4*f.StrideY+3*10+4] ^= 0xff
	if _, err := sim.DecodeStamp(f.Y, f.StrideY, f.Width, f.Height); !errors.Is(err, sim.ErrStampCheck) {
		t.Fatalf("damaged stamp: err = %v, want ErrStampCheck", err)
	}
	if _, err := sim.DecodeStamp(f.Y[:100], f.StrideY, f.Width, f.Height); err == nil {
		t.Fatal("short plane accepted")
	}
	if _, err := sim.DecodeStamp(f.Y, 64, 64, 64); err == nil {
		t.Fatal("picture smaller than the stamp accepted")
	}
}

func TestCameraFrames(t *testing.T) {
	clk := sim.NewFakeClock(t0)
	b := newBoard(t, sim.Config{Clock: clk})
	ctx := context.Background()
	if got := b.Camera.Format(); got != (hal.VideoFormat{Width: 640, Height: 360, FPS: 30}) {
		t.Fatalf("format %+v", got)
	}
	var prev []byte
	var f hal.Frame
	for n := range uint64(40) {
		if n > 0 {
			clk.Advance(time.Second / 30)
			clk.Advance(time.Nanosecond) // 1/30 s is not a whole number of nanoseconds
		}
		if err := b.Camera.ReadFrame(ctx, &f); err != nil {
			t.Fatal(err)
		}
		if f.Width != 640 || f.Height != 360 || len(f.Y) != 640*360 || len(f.U) != 320*180 {
			t.Fatalf("frame %dx%d, planes %d %d", f.Width, f.Height, len(f.Y), len(f.U))
		}
		s, err := sim.DecodeStamp(f.Y, f.StrideY, f.Width, f.Height)
		if err != nil {
			t.Fatal(err)
		}
		if s.Seq != n || f.Seq != n || !s.Captured.Equal(f.Captured) || !f.Captured.Equal(clk.Now()) {
			t.Fatalf("frame %d: stamp %+v, frame seq %d captured %v, clock %v", n, s, f.Seq, f.Captured, clk.Now())
		}
		body := f.Y[3*sim.StampCell(640)*f.StrideY:]
		if prev != nil && bytes.Equal(prev, body) {
			t.Fatalf("frame %d has the same picture as frame %d", n, n-1)
		}
		prev = append(prev[:0], body...)
	}
}

// SetFormat changes the size and rate from the next frame; Seq keeps counting; a mode the
// simulated camera does not have is refused and the format kept.
func TestCameraSetFormat(t *testing.T) {
	clk := sim.NewFakeClock(t0)
	b := newBoard(t, sim.Config{Clock: clk})
	ctx := context.Background()
	var f hal.Frame
	read := func() {
		t.Helper()
		if err := b.Camera.ReadFrame(ctx, &f); err != nil {
			t.Fatal(err)
		}
	}
	read()
	clk.Advance(time.Second / 30)
	read() // seq 1
	want := hal.VideoFormat{Width: 1280, Height: 720, FPS: 15}
	got, err := b.Camera.SetFormat(ctx, want)
	if err != nil || got != want || b.Camera.Format() != want {
		t.Fatalf("SetFormat(%v) = %v, %v; Format %v", want, got, err, b.Camera.Format())
	}
	read() // the new schedule starts now: its first frame is due at once
	s, err := sim.DecodeStamp(f.Y, f.StrideY, f.Width, f.Height)
	if err != nil {
		t.Fatal(err)
	}
	if f.Width != 1280 || f.Height != 720 || len(f.Y) != 1280*720 || f.Seq != 2 || s.Seq != 2 {
		t.Fatalf("after SetFormat: frame %dx%d seq %d, stamp seq %d", f.Width, f.Height, f.Seq, s.Seq)
	}
	clk.Advance(time.Second / 15)
	read()
	if f.Seq != 3 {
		t.Fatalf("next frame at 15 fps: seq %d", f.Seq)
	}
	for _, bad := range []hal.VideoFormat{{Width: 1281, Height: 720, FPS: 30}, {Width: 3840, Height: 2160, FPS: 30}, {Width: 640, Height: 360}} {
		if got, err := b.Camera.SetFormat(ctx, bad); err == nil || got != want {
			t.Errorf("SetFormat(%v) = %v, %v; want an error and %v kept", bad, got, err, want)
		}
	}
}

// The schedule is start + n/FPS exactly: frame n is held until then and released at once.
func TestCameraPacingNoDrift(t *testing.T) {
	clk := sim.NewFakeClock(t0)
	b := newBoard(t, sim.Config{Clock: clk, FPS: 30, Width: 320, Height: 180})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type result struct {
		f   hal.Frame
		err error
	}
	frames := make(chan result)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var f hal.Frame
			err := b.Camera.ReadFrame(ctx, &f)
			select {
			case frames <- result{f, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() { cancel(); <-done }()

	if r := <-frames; r.err != nil || r.f.Seq != 0 || !r.f.Captured.Equal(t0) {
		t.Fatalf("first frame: seq %d at %v, err %v", r.f.Seq, r.f.Captured, r.err)
	}
	for n := int64(1); n <= 300; n++ {
		due := t0.Add(time.Duration(n * int64(time.Second) / 30))
		if err := clk.BlockUntilWaiters(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(due.Sub(clk.Now()) - time.Nanosecond)
		if clk.Waiters() != 1 {
			t.Fatalf("frame %d delivered before %v", n, due)
		}
		clk.Advance(time.Nanosecond)
		r := <-frames
		if r.err != nil || r.f.Seq != uint64(n) || !r.f.Captured.Equal(due) {
			t.Fatalf("frame %d: seq %d at %v, want at %v, err %v", n, r.f.Seq, r.f.Captured, due, r.err)
		}
	}

	// A reader more than a frame late gets the current frame, not a backlog.
	if err := clk.BlockUntilWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if r := <-frames; r.err != nil || r.f.Seq != 301 {
		t.Fatalf("waiting read: seq %d (want 301), err %v", r.f.Seq, r.err)
	}
	if r := <-frames; r.err != nil || r.f.Seq != 330 {
		t.Fatalf("late read: seq %d (want 330), err %v", r.f.Seq, r.err)
	}

	// Cancelling ctx ends a blocked read at once.
	if err := clk.BlockUntilWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
}

func TestCameraCancelAndClose(t *testing.T) {
	clk := sim.NewFakeClock(t0)
	b := newBoard(t, sim.Config{Clock: clk})
	var f hal.Frame
	if err := b.Camera.ReadFrame(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Camera.ReadFrame(ctx, &f) }()
	if err := clk.BlockUntilWaiters(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	if clk.Waiters() != 0 {
		t.Fatal("cancelled read left a waiter behind")
	}
	if err := b.Camera.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Camera.ReadFrame(context.Background(), &f); !errors.Is(err, hal.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestCameraReadFrameAllocs(t *testing.T) {
	b := newBoard(t, sim.Config{Clock: sim.NewInstantClock(t0), Width: 1280, Height: 720})
	ctx := context.Background()
	var f hal.Frame
	if err := b.Camera.ReadFrame(ctx, &f); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := b.Camera.ReadFrame(ctx, &f); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("ReadFrame allocates %v times per frame", n)
	}
}

func readTone(t *testing.T, m *sim.Mic, periods int) []int16 {
	t.Helper()
	pcm := make([]int16, 0, periods*sim.PeriodSamples)
	buf := make([]int16, sim.PeriodSamples)
	for range periods {
		if err := m.ReadPCM(context.Background(), buf); err != nil {
			t.Fatal(err)
		}
		pcm = append(pcm, buf...)
	}
	return pcm
}

func TestMicTone(t *testing.T) {
	for _, hz := range []float64{440, 1000} {
		b := newBoard(t, sim.Config{Clock: sim.NewInstantClock(t0), ToneHz: hz})
		if got := b.Mic.Format(); got != (hal.AudioFormat{SampleRate: 48000, Channels: 1, FrameSamples: 480}) {
			t.Fatalf("format %+v", got)
		}
		pcm := readTone(t, b.Mic, 100) // one second

		crossings := 0
		for i := 1; i < len(pcm); i++ {
			if (pcm[i-1] < 0) != (pcm[i] < 0) {
				crossings++
			}
		}
		if want := int(2 * hz); crossings < want-2 || crossings > want+2 {
			t.Errorf("%g Hz: %d zero crossings in 1 s, want about %d", hz, crossings, want)
		}
		// Elsewhere at least 40 dB below the tone: a power ratio of 1e-4.
		on := sim.ToneDBFS(pcm, hz, 48000)
		for _, off := range []float64{hz * 0.8, hz * 1.25, hz * 2, 100} {
			if lvl := sim.ToneDBFS(pcm, off, 48000); lvl > on-40 {
				t.Errorf("%g Hz tone: %g Hz reads %.1f dBFS, only %.1f dB below the tone's %.1f", hz, off, lvl, on-lvl, on)
			}
		}
		// Phase continuity: no step between samples larger than the sine's steepest slope.
		maxStep := sim.ToneAmplitude*2*math.Pi*hz/48000 + 2
		for i := 1; i < len(pcm); i++ {
			if d := math.Abs(float64(pcm[i]) - float64(pcm[i-1])); d > maxStep {
				t.Fatalf("%g Hz: step of %v at sample %d (max %v)", hz, d, i, maxStep)
			}
		}
		var sum float64
		for _, v := range pcm {
			sum += float64(v) * float64(v)
		}
		if db := sim.DBFS(math.Sqrt(sum / float64(len(pcm)))); math.Abs(db-(-13.01)) > 0.1 {
			t.Errorf("%g Hz: tone RMS %.2f dBFS, want -13", hz, db)
		}
		if db := sim.ToneDBFS(pcm, hz, 48000); math.Abs(db-(-10)) > 0.01 {
			t.Errorf("%g Hz: ToneDBFS reads %.3f, want the tone's peak, -10", hz, db)
		}
		if db := sim.ToneDBFS(pcm, hz*2, 48000); db > -60 {
			t.Errorf("%g Hz: ToneDBFS at %g Hz reads %.1f, want nothing", hz, hz*2, db)
		}
	}
}

func TestMicPacing(t *testing.T) {
	clk := sim.NewFakeClock(t0)
	b := newBoard(t, sim.Config{Clock: clk})
	ctx := context.Background()
	buf := make([]int16, 480)
	errc := make(chan error, 1)
	for k := range 3 {
		go func() { errc <- b.Mic.ReadPCM(ctx, buf) }()
		if err := clk.BlockUntilWaiters(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10*time.Millisecond - time.Nanosecond)
		if clk.Waiters() != 1 {
			t.Fatalf("period %d delivered before it was recorded", k)
		}
		clk.Advance(time.Nanosecond)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Mic.ReadPCM(ctx, buf[:100]); err == nil {
		t.Fatal("short buffer accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Mic.ReadPCM(cctx, buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	_ = b.Mic.Close()
	if err := b.Mic.ReadPCM(ctx, buf); !errors.Is(err, hal.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestSpeakerLevels(t *testing.T) {
	clk := sim.NewFakeClock(t0)
	b := newBoard(t, sim.Config{Clock: clk, SpeakerRecord: 15 * time.Millisecond})
	ctx := context.Background()
	if b.Speaker.Level() != sim.MinDBFS || b.Speaker.Peak() != sim.MinDBFS {
		t.Fatal("levels before any write are not silence")
	}
	pcm := readTone(t, newBoard(t, sim.Config{Clock: sim.NewInstantClock(t0)}).Mic, 1)
	if err := b.Speaker.WritePCM(ctx, pcm); err != nil {
		t.Fatal(err)
	}
	if l, p := b.Speaker.Level(), b.Speaker.Peak(); math.Abs(l+13.01) > 0.1 || math.Abs(p+10) > 0.1 {
		t.Fatalf("tone: level %.2f peak %.2f dBFS, want -13 and -10", l, p)
	}

	// The second write waits for the first period to play.
	errc := make(chan error, 1)
	go func() { errc <- b.Speaker.WritePCM(ctx, make([]int16, 480)) }()
	if err := clk.BlockUntilWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Millisecond)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if l, p := b.Speaker.Level(), b.Speaker.Peak(); l != sim.MinDBFS || math.Abs(p+10) > 0.1 {
		t.Fatalf("silence after tone: level %.2f peak %.2f dBFS", l, p)
	}
	b.Speaker.ResetPeak()
	if b.Speaker.Peak() != sim.MinDBFS {
		t.Fatal("ResetPeak kept the peak")
	}
	if b.Speaker.Writes() != 2 {
		t.Fatalf("Writes = %d", b.Speaker.Writes())
	}
	rec := b.Speaker.Recording()
	if len(rec) != 720 || !slices.Equal(rec[:480], pcm) || rec[600] != 0 {
		t.Fatalf("recording of %d samples does not hold the writes", len(rec))
	}
	_ = b.Speaker.Close()
	if err := b.Speaker.WritePCM(ctx, pcm); !errors.Is(err, hal.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestButtons(t *testing.T) {
	clk := sim.NewFakeClock(t0)
	b := newBoard(t, sim.Config{Clock: clk})
	ctx := context.Background()
	want := []string{hal.ButtonMic, hal.ButtonCamera, hal.ButtonSpeaker, hal.ButtonVolumeUp, hal.ButtonVolumeDown}
	if got := b.Buttons.Names(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Names() = %v", got)
	}
	for _, name := range want {
		if err := b.Buttons.Press(ctx, name); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []hal.ButtonKind{hal.Press, hal.Release} {
			ev, err := b.Buttons.ReadEvent(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ev != (hal.ButtonEvent{Button: name, Kind: kind, Pressed: kind == hal.Press, Time: t0}) {
				t.Fatalf("event %+v, want %s %v", ev, name, kind)
			}
		}
	}

	err := b.Buttons.Press(ctx, "power")
	if !errors.Is(err, sim.ErrUnknownButton) || !strings.Contains(err.Error(), `"power"`) || !strings.Contains(err.Error(), "volume-up") {
		t.Fatalf("unknown button: %v", err)
	}

	// A full queue blocks Press until ctx ends; ReadEvent honours ctx too.
	for range 8 {
		if err := b.Buttons.Press(ctx, hal.ButtonMic); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Buttons.Press(cctx, hal.ButtonMic); !errors.Is(err, context.Canceled) {
		t.Fatalf("press on a full queue: %v", err)
	}
	for range 16 {
		if _, err := b.Buttons.ReadEvent(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Buttons.ReadEvent(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("read on an empty queue: %v", err)
	}
}

func TestLED(t *testing.T) {
	b := newBoard(t, sim.Config{})
	var led hal.LED = b.LED
	for _, on := range []bool{true, false, true} {
		if err := led.Set(on); err != nil {
			t.Fatal(err)
		}
		if b.LED.On() != on {
			t.Fatalf("On() = %v after Set(%v)", !on, on)
		}
	}
}

func TestNewBoard(t *testing.T) {
	hb, err := sim.NewBoard(sim.Config{Width: 1280, Height: 720, FPS: 15})
	if err != nil {
		t.Fatal(err)
	}
	if hb.Name != "sim" {
		t.Fatalf("name %q", hb.Name)
	}
	if _, ok := hb.Camera.(*sim.Camera); !ok {
		t.Fatalf("camera is %T", hb.Camera)
	}
	if _, ok := hb.Buttons.(*sim.Buttons); !ok {
		t.Fatalf("buttons are %T", hb.Buttons)
	}
	if got := hb.Camera.Format(); got != (hal.VideoFormat{Width: 1280, Height: 720, FPS: 15}) {
		t.Fatalf("format %+v", got)
	}
	if err := hb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := hb.Mic.ReadPCM(context.Background(), make([]int16, 480)); !errors.Is(err, hal.ErrClosed) {
		t.Fatalf("mic after board close: %v", err)
	}
	for _, cfg := range []sim.Config{{Width: 641, Height: 360}, {Width: 64, Height: 64}, {FPS: -1}, {ToneHz: 30000}} {
		if _, err := sim.New(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func BenchmarkCameraReadFrame(b *testing.B) {
	for _, size := range [][2]int{{640, 360}, {1280, 720}} {
		b.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(b *testing.B) {
			board := newBoard(b, sim.Config{Clock: sim.NewInstantClock(t0), Width: size[0], Height: size[1]})
			ctx := context.Background()
			var f hal.Frame
			b.ReportAllocs()
			for b.Loop() {
				if err := board.Camera.ReadFrame(ctx, &f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
