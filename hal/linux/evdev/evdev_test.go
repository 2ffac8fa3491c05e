package evdev

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"roombox/hal"
	"roombox/hal/linux/evdev/internal/input"
	"roombox/hal/sim"
)

// Every test closes what it opens: the scanner and readers are gone after Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 7, 28, 9, 0, 0, 0, time.UTC)

const keyA = 30 // KEY_A: a keyboard key no button maps

// fakeSys is /dev/input with devices the test plugs and unplugs. Each open of a device is a
// pipe the test writes events into; unplugging closes the write ends, which the handle
// reports as ENODEV like the kernel.
type fakeSys struct {
	mu    sync.Mutex
	devs  map[string]*fakeDev
	scans int
}

type fakeDev struct {
	path, name string
	keys       []uint16
	openErr    error
	held       [input.KeyBitmapBytes]byte // what EVIOCGKEY reports
	handles    []*fakeHandle
	grabbed    bool
}

type fakeHandle struct {
	*os.File // the read end
	w        *os.File
	d        *fakeDev
	sys      *fakeSys
	closed   bool
}

func newFakeSys(devs ...*fakeDev) *fakeSys {
	s := &fakeSys{devs: map[string]*fakeDev{}}
	for _, d := range devs {
		s.plug(d)
	}
	return s
}

func (s *fakeSys) plug(d *fakeDev) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devs[d.path] = d
}

func (s *fakeSys) unplug(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.devs[path].handles {
		h.w.Close()
	}
	delete(s.devs, path)
}

func (s *fakeSys) scanCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scans
}

// openHandles counts the handles not closed yet.
func (s *fakeSys) openHandles(d *fakeDev) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, h := range d.handles {
		if !h.closed {
			n++
		}
	}
	return n
}

func (s *fakeSys) Paths() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scans++
	var out []string
	for p := range s.devs {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

func (s *fakeSys) Open(path string) (device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devs[path]
	switch {
	case !ok:
		return nil, fs.ErrNotExist
	case d.openErr != nil:
		return nil, d.openErr
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	h := &fakeHandle{File: r, w: w, d: d, sys: s}
	d.handles = append(d.handles, h)
	return h, nil
}

func (h *fakeHandle) Read(p []byte) (int, error) {
	n, err := h.File.Read(p)
	if errors.Is(err, io.EOF) {
		return n, &fs.PathError{Op: "read", Path: h.d.path, Err: syscall.ENODEV}
	}
	return n, err
}

func (h *fakeHandle) Name() (string, error) { return h.d.name, nil }

func (h *fakeHandle) KeyBits(bits *[input.KeyBitmapBytes]byte) error {
	for _, k := range h.d.keys {
		setBit(bits, k, true)
	}
	return nil
}

func (h *fakeHandle) KeyState(bits *[input.KeyBitmapBytes]byte) error {
	h.sys.mu.Lock()
	defer h.sys.mu.Unlock()
	*bits = h.d.held
	return nil
}

func (h *fakeHandle) Grab() error {
	h.sys.mu.Lock()
	defer h.sys.mu.Unlock()
	h.d.grabbed = true
	return nil
}

func (h *fakeHandle) Close() error {
	h.sys.mu.Lock()
	h.closed = true
	h.sys.mu.Unlock()
	h.w.Close()
	return h.File.Close()
}

// send writes events to d's newest handle in one write, as the kernel queues them.
func (s *fakeSys) send(t *testing.T, d *fakeDev, evs ...input.Event) {
	t.Helper()
	s.mu.Lock()
	h := d.handles[len(d.handles)-1]
	s.mu.Unlock()
	buf := make([]byte, len(evs)*input.Size)
	for i, ev := range evs {
		input.Encode(buf[i*input.Size:], input.WordSize, ev)
	}
	if _, err := h.w.Write(buf); err != nil {
		t.Fatal(err)
	}
}

func key(code uint16, value int32) input.Event {
	return input.Event{Type: input.EvKey, Code: code, Value: value}
}

var synReport = input.Event{Type: input.EvSyn, Code: input.SynReport}

type rig struct {
	t     *testing.T
	ctx   context.Context
	clock *sim.FakeClock
	sys   *fakeSys
	b     *Buttons
}

func start(t *testing.T, cfg Config, devs ...*fakeDev) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	r := &rig{t: t, ctx: ctx, clock: sim.NewFakeClock(t0), sys: newFakeSys(devs...)}
	cfg.Clock, cfg.sys = r.clock, r.sys
	var err error
	if r.b, err = Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.b.Close() })
	// The first scan is done once the scanner waits for the next.
	if err := r.clock.BlockUntilWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) next() hal.ButtonEvent {
	r.t.Helper()
	ev, err := r.b.ReadEvent(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return ev
}

func (r *rig) expect(button string, kind hal.ButtonKind) {
	r.t.Helper()
	ev := r.next()
	if ev.Button != button || ev.Kind != kind || ev.Pressed != (kind == hal.Press) {
		r.t.Fatalf("got %s %s (pressed %t), want %s %s", ev.Button, ev.Kind, ev.Pressed, button, kind)
	}
	if !ev.Time.Equal(r.clock.Now()) {
		r.t.Errorf("%s %s stamped %v, want the clock's %v", button, kind, ev.Time, r.clock.Now())
	}
}

func (r *rig) waitDevices(n int) []Info {
	r.t.Helper()
	infos, err := r.b.WaitDevices(r.ctx, func(i []Info) bool { return len(i) == n })
	if err != nil {
		r.t.Fatalf("waiting for %d devices (have %v): %v", n, r.b.Devices(), err)
	}
	return infos
}

func TestKeysBecomeButtonEdges(t *testing.T) {
	kbd := &fakeDev{path: "/dev/input/event3", name: "speakerphone", keys: []uint16{KeyMicMute, KeyMute, KeyVolumeUp, KeyVolumeDown, keyA}}
	r := start(t, Config{}, kbd)
	r.waitDevices(1)
	r.sys.send(t, kbd,
		key(KeyMicMute, 1), synReport,
		key(KeyMicMute, 2), synReport, // autorepeat: hal/button makes repeats
		key(keyA, 1), synReport, // not a button
		key(KeyMicMute, 0), synReport,
		key(KeyVolumeDown, 1), key(KeyMute, 1), synReport,
	)
	r.expect(hal.ButtonMic, hal.Press)
	r.expect(hal.ButtonMic, hal.Release)
	r.expect(hal.ButtonVolumeDown, hal.Press)
	r.expect(hal.ButtonSpeaker, hal.Press)
	if got, want := r.b.Names(), []string{hal.ButtonCamera, hal.ButtonMic, hal.ButtonSpeaker, hal.ButtonVolumeDown, hal.ButtonVolumeUp}; !slices.Equal(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
}

func TestCustomKeyMap(t *testing.T) {
	d := &fakeDev{path: "/dev/input/event0", name: "gpio-keys", keys: []uint16{keyA}}
	r := start(t, Config{Keys: map[uint16]string{keyA: hal.ButtonMic}}, d)
	r.waitDevices(1)
	r.sys.send(t, d, key(keyA, 1), synReport)
	r.expect(hal.ButtonMic, hal.Press)
}

func TestDevicesFoundByCapabilityAndName(t *testing.T) {
	keyboard := &fakeDev{path: "/dev/input/event0", name: "AT keyboard", keys: []uint16{keyA}}
	gpioKeys := &fakeDev{path: "/dev/input/event1", name: "gpio-keys", keys: []uint16{KeyMicMute}}
	denied := &fakeDev{path: "/dev/input/event2", name: "secret", keys: []uint16{KeyMicMute}, openErr: fs.ErrPermission}
	media := &fakeDev{path: "/dev/input/event3", name: "media keys", keys: []uint16{KeyMute}}

	r := start(t, Config{}, keyboard, gpioKeys, denied, media)
	got := r.b.Devices()
	want := []Info{{"/dev/input/event1", "gpio-keys"}, {"/dev/input/event3", "media keys"}}
	if !slices.Equal(got, want) {
		t.Errorf("opened %v, want %v", got, want)
	}
	if n := r.sys.openHandles(keyboard); n != 0 {
		t.Errorf("the keyboard without button keys is still open (%d handles)", n)
	}
	if gpioKeys.grabbed {
		t.Error("grabbed without Config.Grab: a desktop would lose the key")
	}
	r.b.Close()

	named := start(t, Config{Names: []string{"gpio-keys"}, Grab: true}, keyboard, gpioKeys, denied, media)
	if got, want := named.b.Devices(), []Info{{"/dev/input/event1", "gpio-keys"}}; !slices.Equal(got, want) {
		t.Errorf("with Names: opened %v, want %v", got, want)
	}
	if !gpioKeys.grabbed {
		t.Error("Config.Grab did not grab")
	}
}

// An unplugged device releases its held keys, is closed, and is found again after the
// backoff, which doubles while nothing turns up.
func TestUnplugAndRediscovery(t *testing.T) {
	d := &fakeDev{path: "/dev/input/event5", name: "Jabra SPEAK", keys: []uint16{KeyVolumeUp}}
	r := start(t, Config{}, d)
	r.waitDevices(1)
	r.sys.send(t, d, key(KeyVolumeUp, 1), synReport)
	r.expect(hal.ButtonVolumeUp, hal.Press)

	r.sys.unplug(d.path)
	// Held when unplugged: released, so the debouncer does not repeat it forever.
	r.expect(hal.ButtonVolumeUp, hal.Release)
	r.waitDevices(0)
	if n := r.sys.openHandles(d); n != 0 {
		t.Errorf("unplugged device still has %d open handles", n)
	}

	// Rescans after 0.5 s, then 1 s, 2 s ... while the device stays away.
	step := func(adv time.Duration, wantScans int) {
		t.Helper()
		if err := r.clock.BlockUntilWaiters(r.ctx, 1); err != nil {
			t.Fatal(err)
		}
		r.clock.Advance(adv)
		if err := r.clock.BlockUntilWaiters(r.ctx, 1); err != nil {
			t.Fatal(err)
		}
		if got := r.sys.scanCount(); got != wantScans {
			t.Fatalf("after %v more: %d scans, want %d", adv, got, wantScans)
		}
	}
	base := r.sys.scanCount()
	step(499*time.Millisecond, base)
	step(time.Millisecond, base+1)
	step(999*time.Millisecond, base+1)
	step(time.Millisecond, base+2)

	r.sys.plug(d)
	step(2*time.Second, base+3)
	if got := r.waitDevices(1); got[0].Path != d.path {
		t.Fatalf("rediscovered %v", got)
	}
	r.sys.send(t, d, key(KeyVolumeUp, 1), synReport)
	r.expect(hal.ButtonVolumeUp, hal.Press)
}

// After the kernel drops events, the held keys are read afresh and the missed edge emitted.
func TestSynDroppedResyncs(t *testing.T) {
	d := &fakeDev{path: "/dev/input/event1", name: "gpio-keys", keys: []uint16{KeyMicMute, KeyCamera}}
	r := start(t, Config{}, d)
	r.waitDevices(1)
	r.sys.send(t, d, key(KeyMicMute, 1), synReport)
	r.expect(hal.ButtonMic, hal.Press)

	r.sys.mu.Lock()
	setBit(&d.held, KeyCamera, true) // mic released and camera pressed while the queue overflowed
	r.sys.mu.Unlock()
	r.sys.send(t, d, input.Event{Type: input.EvSyn, Code: input.SynDropped}, key(KeyMicMute, 1), synReport)
	got := map[string]hal.ButtonKind{}
	for range 2 {
		ev := r.next()
		got[ev.Button] = ev.Kind
	}
	if got[hal.ButtonMic] != hal.Release || got[hal.ButtonCamera] != hal.Press {
		t.Errorf("after SYN_DROPPED got %v, want mic release and camera press", got)
	}
}

func TestCloseEndsReads(t *testing.T) {
	d := &fakeDev{path: "/dev/input/event1", name: "gpio-keys", keys: []uint16{KeyMicMute}}
	r := start(t, Config{}, d)
	r.waitDevices(1)
	r.b.Close()
	if _, err := r.b.ReadEvent(r.ctx); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("ReadEvent after Close: %v, want hal.ErrClosed", err)
	}
	if n := r.sys.openHandles(d); n != 0 {
		t.Errorf("%d handles open after Close", n)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	if _, err := Open(t.Context(), Config{}); err == nil {
		t.Error("no clock accepted")
	}
	if _, err := Open(t.Context(), Config{Clock: hal.WallClock{}, Keys: map[uint16]string{0x300: "mic"}}); err == nil {
		t.Error("key code 0x300 accepted")
	}
}

// BenchmarkEvent measures a press or release from the device's bytes to ReadEvent.
func BenchmarkEvent(b *testing.B) {
	d := &fakeDev{path: "/dev/input/event1", name: "gpio-keys", keys: []uint16{KeyMicMute}}
	sys := newFakeSys(d)
	clock := sim.NewFakeClock(t0)
	bt, err := Open(b.Context(), Config{Clock: clock, sys: sys})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	if _, err := bt.WaitDevices(b.Context(), func(i []Info) bool { return len(i) == 1 }); err != nil {
		b.Fatal(err)
	}
	h := d.handles[0]
	var press, release [2 * input.Size]byte
	input.Encode(press[:], input.WordSize, key(KeyMicMute, 1))
	input.Encode(press[input.Size:], input.WordSize, synReport)
	input.Encode(release[:], input.WordSize, key(KeyMicMute, 0))
	input.Encode(release[input.Size:], input.WordSize, synReport)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf := press[:]
		if i%2 == 1 {
			buf = release[:]
		}
		if _, err := h.w.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := bt.ReadEvent(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
