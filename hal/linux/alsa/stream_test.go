package alsa

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"roombox/hal"
	"roombox/hal/sim"
)

// fakePCM models what alsa-lib's null plugin cannot: a device that is not ready (so a
// transfer has to wait), xruns, suspends and unplugs. Capture delivers src, then zeros;
// playback appends to written.
type fakePCM struct {
	par     Params
	capture bool // set when opened

	mu         sync.Mutex
	src        []byte
	written    []byte
	script     []error // returned by the next transfers, one each, before any data moves
	resumeErrs []error // returned by the next resumes
	stalled    bool    // nothing is ever ready: transfers return errAgain, waits take d
	chunk      int     // most frames one transfer moves; 0: no limit
	waits      int
	prepares   int
	resumes    int
	closed     bool
}

var errFakeUseAfterClose = errors.New("fake: pcm used after close")

func (f *fakePCM) transfer(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return 0, errFakeUseAfterClose
	case len(f.script) > 0:
		err := f.script[0]
		f.script = f.script[1:]
		return 0, err
	case f.stalled:
		return 0, errAgain
	}
	n := len(b) / f.par.frameBytes()
	if f.chunk > 0 {
		n = min(n, f.chunk)
	}
	nb := n * f.par.frameBytes()
	if f.capture {
		k := copy(b[:nb], f.src)
		clear(b[k:nb])
		f.src = f.src[k:]
	} else {
		f.written = append(f.written, b[:nb]...)
	}
	return n, nil
}

func (f *fakePCM) wait(d time.Duration) error {
	f.mu.Lock()
	f.waits++
	stalled, closed := f.stalled, f.closed
	f.mu.Unlock()
	if closed {
		return errFakeUseAfterClose
	}
	if stalled {
		time.Sleep(d) // the model of snd_pcm_wait timing out
	}
	return nil
}

func (f *fakePCM) prepare() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepares++
	return nil
}

func (f *fakePCM) resume() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resumes++
	if len(f.resumeErrs) == 0 {
		return nil
	}
	err := f.resumeErrs[0]
	f.resumeErrs = f.resumeErrs[1:]
	return err
}

// delay is what capture has not read yet; playback plays what it is given at once.
func (f *fakePCM) delay() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, errFakeUseAfterClose
	}
	if f.capture {
		return len(f.src) / f.par.frameBytes(), nil
	}
	return 0, nil
}

func (f *fakePCM) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakePCM) counts() (waits, prepares, resumes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waits, f.prepares, f.resumes
}

func (f *fakePCM) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

var mono16 = Params{Format: S16, Channels: 1, Rate: SampleRate, PeriodFrames: PeriodFrames, BufferFrames: 2 * PeriodFrames}

// openResult is one answer of the fake openPCM.
type openResult struct {
	p   *fakePCM
	err error
}

// useFakes makes openPCM answer with results in order, and records the names opened.
func useFakes(t *testing.T, results ...openResult) *[]string {
	t.Helper()
	var mu sync.Mutex
	var names []string
	saved := openPCM
	openPCM = func(name string, capture bool, periods int) (pcm, Params, error) {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, name)
		if len(results) == 0 {
			t.Errorf("unexpected open of %q", name)
			return nil, Params{}, errors.New("fake: no more devices")
		}
		r := results[0]
		results = results[1:]
		if r.err != nil {
			return nil, Params{}, r.err
		}
		r.p.capture = capture
		return r.p, r.p.par, nil
	}
	t.Cleanup(func() { openPCM = saved })
	return &names
}

func samples(n int, f func(i int) int16) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = f(i)
	}
	return s
}

func bytesOf[T int16 | int32](s []T) []byte {
	return slices.Clone(unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0]))))
}

func TestMicReadsWholePeriodsFromPartialTransfers(t *testing.T) {
	want := samples(2*PeriodFrames, func(i int) int16 { return int16(i - 300) })
	f := &fakePCM{par: mono16, src: bytesOf(want), chunk: 100}
	useFakes(t, openResult{p: f})
	m, err := OpenMic(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.Format(); got != (hal.AudioFormat{SampleRate: 48000, Channels: 1, FrameSamples: 480}) {
		t.Errorf("Format() = %+v", got)
	}
	buf := make([]int16, PeriodFrames+7) // longer than a period: only a period is read
	for p := range 2 {
		if err := m.ReadPCM(context.Background(), buf); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(buf[:PeriodFrames], want[p*PeriodFrames:(p+1)*PeriodFrames]) {
			t.Fatalf("period %d differs from what the device delivered", p)
		}
	}
	if err := m.ReadPCM(context.Background(), buf[:PeriodFrames-1]); err == nil {
		t.Error("ReadPCM into a buffer shorter than a period succeeded")
	}
}

// TestMicDelayIsWhatWaitsUnread checks Delay (hal.DelayReporter, what the echo canceller
// lines the microphone up with): the capture the device holds unread, shrinking a period
// per read, through the reopening wrapper too; 0 once closed.
func TestMicDelayIsWhatWaitsUnread(t *testing.T) {
	f := &fakePCM{par: mono16, src: bytesOf(make([]int16, 3*PeriodFrames))}
	useFakes(t, openResult{p: f})
	m := NewReopeningMic(Config{})
	var _ hal.DelayReporter = m
	if got := m.Delay(); got != 0 {
		t.Errorf("Delay before the device is open = %v, want 0", got)
	}
	buf := make([]int16, PeriodFrames)
	for _, want := range []time.Duration{20 * time.Millisecond, 10 * time.Millisecond, 0} {
		if err := m.ReadPCM(context.Background(), buf); err != nil {
			t.Fatal(err)
		}
		if got := m.Delay(); got != want {
			t.Errorf("Delay after a read = %v, want %v", got, want)
		}
	}
	m.Close()
	if got := m.Delay(); got != 0 {
		t.Errorf("Delay after Close = %v, want 0", got)
	}
}

func TestMicMixesDeviceChannelsToMono(t *testing.T) {
	left := samples(PeriodFrames, func(i int) int16 { return int16(i * 37) })
	right := samples(PeriodFrames, func(i int) int16 { return int16(-i * 11) })
	mix := samples(PeriodFrames, func(i int) int16 { return int16((int32(left[i]) + int32(right[i])) / 2) })

	s16 := make([]int16, 0, 2*PeriodFrames)
	s32 := make([]int32, 0, 2*PeriodFrames)
	for i := range left {
		s16 = append(s16, left[i], right[i])
		s32 = append(s32, int32(left[i])<<16|0x1234, int32(right[i])<<16|0x5678) // low bits: below 16-bit resolution
	}
	for _, tc := range []struct {
		name string
		par  Params
		src  []byte
	}{
		{"S16 stereo", Params{Format: S16, Channels: 2, Rate: SampleRate}, bytesOf(s16)},
		{"S32 stereo", Params{Format: S32, Channels: 2, Rate: SampleRate}, bytesOf(s32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			useFakes(t, openResult{p: &fakePCM{par: tc.par, src: tc.src, chunk: 64}})
			m, err := OpenMic(Config{Device: "hw:1,0"})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			buf := make([]int16, PeriodFrames)
			if err := m.ReadPCM(context.Background(), buf); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(buf, mix) {
				t.Errorf("mono mix: got %v…, want %v…", buf[:6], mix[:6])
			}
		})
	}
}

func TestSpeakerWritesMonoToEveryDeviceChannel(t *testing.T) {
	in := samples(PeriodFrames*2+123, func(i int) int16 { return int16(i*97 - 20000) }) // not whole periods
	var want16 []int16
	var want32 []int32
	for _, v := range in {
		want16 = append(want16, v, v)
		want32 = append(want32, int32(v)<<16)
	}
	for _, tc := range []struct {
		name string
		par  Params
		want []byte
	}{
		{"S16 mono", mono16, bytesOf(in)},
		{"S16 stereo", Params{Format: S16, Channels: 2, Rate: SampleRate}, bytesOf(want16)},
		{"S32 mono", Params{Format: S32, Channels: 1, Rate: SampleRate}, bytesOf(want32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePCM{par: tc.par, chunk: 200}
			useFakes(t, openResult{p: f})
			sp, err := OpenSpeaker(Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			if err := sp.WritePCM(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.written, tc.want) {
				t.Errorf("device got %d bytes, want %d, or they differ", len(f.written), len(tc.want))
			}
		})
	}
}

func TestOpenRefusesAnotherRate(t *testing.T) {
	f := &fakePCM{par: Params{Format: S16, Channels: 1, Rate: 44100}}
	useFakes(t, openResult{p: f})
	if _, err := OpenSpeaker(Config{Device: "hw:0,0"}); err == nil {
		t.Fatal("a 44.1 kHz device opened")
	}
	if !f.isClosed() {
		t.Error("the refused device was left open")
	}
}

func TestXrunIsRecoveredAndCounted(t *testing.T) {
	tone := samples(PeriodFrames, func(i int) int16 { return int16(i) })
	mf := &fakePCM{par: mono16, src: bytesOf(tone), script: []error{errXrun}}
	sf := &fakePCM{par: mono16, script: []error{errXrun, errXrun}}
	useFakes(t, openResult{p: mf}, openResult{p: sf})
	m, err := OpenMic(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sp, err := OpenSpeaker(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()

	buf := make([]int16, PeriodFrames)
	if err := m.ReadPCM(context.Background(), buf); err != nil {
		t.Fatalf("read after an overrun: %v", err)
	}
	if !slices.Equal(buf, tone) {
		t.Error("the period after an overrun is not the device's data")
	}
	if err := sp.WritePCM(context.Background(), tone); err != nil {
		t.Fatalf("write after underruns: %v", err)
	}
	if !slices.Equal(sf.written, bytesOf(tone)) {
		t.Error("the period written after underruns did not reach the device")
	}
	if _, p, _ := mf.counts(); m.Xruns() != 1 || p != 1 {
		t.Errorf("mic: Xruns() = %d, prepares = %d; want 1, 1", m.Xruns(), p)
	}
	if _, p, _ := sf.counts(); sp.Xruns() != 2 || p != 2 {
		t.Errorf("speaker: Xruns() = %d, prepares = %d; want 2, 2", sp.Xruns(), p)
	}
}

func TestSuspendIsResumed(t *testing.T) {
	errNoResume := errors.New("fake: resume not supported")
	for _, tc := range []struct {
		name         string
		resumeErrs   []error
		wantResumes  int
		wantPrepares int
	}{
		{"driver resumes after retries", []error{errAgain, errAgain, nil}, 3, 0},
		{"driver cannot resume", []error{errNoResume}, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePCM{par: mono16, script: []error{errSuspended}, resumeErrs: tc.resumeErrs}
			useFakes(t, openResult{p: f})
			sp, err := OpenSpeaker(Config{Clock: sim.NewInstantClock(time.Unix(0, 0))})
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			if err := sp.WritePCM(context.Background(), make([]int16, PeriodFrames)); err != nil {
				t.Fatal(err)
			}
			if _, p, r := f.counts(); r != tc.wantResumes || p != tc.wantPrepares {
				t.Errorf("resumes, prepares = %d, %d; want %d, %d", r, p, tc.wantResumes, tc.wantPrepares)
			}
			if sp.Suspends() != 1 || sp.Xruns() != 0 {
				t.Errorf("Suspends(), Xruns() = %d, %d; want 1, 0", sp.Suspends(), sp.Xruns())
			}
		})
	}
}

func TestUnpluggedIsSticky(t *testing.T) {
	f := &fakePCM{par: mono16, script: []error{ErrUnplugged}}
	useFakes(t, openResult{p: f})
	m, err := OpenMic(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	buf := make([]int16, PeriodFrames)
	for range 2 {
		if err := m.ReadPCM(context.Background(), buf); !errors.Is(err, ErrUnplugged) {
			t.Fatalf("ReadPCM on an unplugged device: %v, want ErrUnplugged", err)
		}
	}
}

// A blocked ReadPCM or WritePCM returns once ctx ends, and leaves no goroutine behind: it
// waits in bounded slices on the calling goroutine.
func TestBlockedTransferHonoursContext(t *testing.T) {
	for _, capture := range []bool{true, false} {
		f := &fakePCM{par: mono16, stalled: true}
		useFakes(t, openResult{p: f})
		var dev interface{ Close() error }
		var transfer func(context.Context) error
		buf := make([]int16, PeriodFrames)
		if capture {
			m, err := OpenMic(Config{})
			if err != nil {
				t.Fatal(err)
			}
			dev, transfer = m, func(ctx context.Context) error { return m.ReadPCM(ctx, buf) }
		} else {
			sp, err := OpenSpeaker(Config{})
			if err != nil {
				t.Fatal(err)
			}
			dev, transfer = sp, func(ctx context.Context) error { return sp.WritePCM(ctx, buf) }
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- transfer(ctx) }()
		for w, _, _ := f.counts(); w < 3; w, _, _ = f.counts() {
			time.Sleep(time.Millisecond) // until it has waited a few slices
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("capture %v: blocked transfer after cancel: %v", capture, err)
		}
		if err := dev.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestCloseEndsBlockedRead(t *testing.T) {
	f := &fakePCM{par: mono16, stalled: true}
	useFakes(t, openResult{p: f})
	m, err := OpenMic(Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- m.ReadPCM(context.Background(), make([]int16, PeriodFrames)) }()
	for w, _, _ := f.counts(); w < 2; w, _, _ = f.counts() {
		time.Sleep(time.Millisecond)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("ReadPCM blocked during Close: %v, want hal.ErrClosed", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
