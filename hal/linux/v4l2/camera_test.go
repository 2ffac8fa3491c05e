package v4l2

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"roombox/hal"
	"roombox/hal/sim"
)

// step is what the fake device does on one Wait and the Dequeue after it.
type step struct {
	timeout bool   // Wait times out (the clock moves by the wait)
	waitErr error  // Wait fails
	deqErr  error  // Dequeue fails
	buf     []byte // Dequeue returns this
}

// fakeDevice plays a script of steps; past its end every Wait times out. It fails the test
// on a buffer released twice or any use after Close or concurrent with another call.
type fakeDevice struct {
	t      *testing.T
	clock  *sim.FakeClock
	onWait func(n int) // called at the start of each Wait, n counting from 1

	mu      sync.Mutex
	script  []step
	pending *step
	out     map[uint32]bool
	next    uint32
	waits   int
	busy    bool
	closed  bool
}

func newFakeDevice(t *testing.T, clock *sim.FakeClock, script ...step) *fakeDevice {
	return &fakeDevice{t: t, clock: clock, script: script, out: map[uint32]bool{}}
}

func (d *fakeDevice) enter(op string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.busy {
		d.t.Errorf("fake device: %s while closed=%v busy=%v", op, d.closed, d.busy)
	}
	d.busy = true
}

func (d *fakeDevice) leave() {
	d.mu.Lock()
	d.busy = false
	d.mu.Unlock()
}

func (d *fakeDevice) Wait(timeout time.Duration) error {
	d.enter("Wait")
	defer d.leave()
	d.mu.Lock()
	d.waits++
	n := d.waits
	d.mu.Unlock()
	if d.onWait != nil {
		d.onWait(n)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.script) == 0 || d.script[0].timeout {
		if len(d.script) > 0 {
			d.script = d.script[1:]
		}
		d.clock.Advance(timeout)
		return errWaitTimeout
	}
	s := d.script[0]
	d.script = d.script[1:]
	if s.waitErr != nil {
		return s.waitErr
	}
	if s.buf != nil || s.deqErr != nil {
		d.pending = &s // else woken with nothing to dequeue
	}
	return nil
}

func (d *fakeDevice) Dequeue() ([]byte, uint32, error) {
	d.enter("Dequeue")
	defer d.leave()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.pending
	d.pending = nil
	if s == nil {
		return nil, 0, syscall.EAGAIN
	}
	if s.deqErr != nil {
		return nil, 0, s.deqErr
	}
	i := d.next
	d.next++
	d.out[i] = true
	return s.buf, i, nil
}

func (d *fakeDevice) Release(i uint32) error {
	d.enter("Release")
	defer d.leave()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.out[i] {
		d.t.Errorf("fake device: buffer %d released but not dequeued", i)
	}
	delete(d.out, i)
	return nil
}

func (d *fakeDevice) Close() error {
	d.enter("Close")
	defer d.leave()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

func (d *fakeDevice) outstanding() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.out)
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// yuyvFrame is a 4x2 YUYV picture whose luma is all v.
func yuyvFrame(v byte) []byte {
	return []byte{v, 128, v, 128, v, 128, v, 128, v, 128, v, 128, v, 128, v, 128}
}

func newTestCamera(dev *fakeDevice, gone func() bool) *Camera {
	if gone == nil {
		gone = func() bool { return false }
	}
	return newCamera("/dev/video9", dev, Mode{YUYV, 4, 2, 30}, layout{Format: YUYV, Width: 4, Height: 2, Stride: 8},
		dev.clock, 3*time.Second, gone)
}

func TestCameraReadsFrames(t *testing.T) {
	clock := sim.NewFakeClock(epoch)
	dev := newFakeDevice(t, clock,
		step{buf: yuyvFrame(10)},
		step{timeout: true},
		step{},                  // woken, but nothing to dequeue (EAGAIN)
		step{buf: []byte{1, 2}}, // short: dropped
		step{buf: yuyvFrame(20)},
		step{buf: yuyvFrame(30)},
	)
	cam := newTestCamera(dev, nil)
	defer cam.Close()
	if got := cam.Format(); got != (hal.VideoFormat{Width: 4, Height: 2, FPS: 30}) {
		t.Errorf("Format = %+v", got)
	}
	var f hal.Frame
	for i, luma := range []byte{10, 20, 30} {
		clock.Advance(time.Millisecond)
		if err := cam.ReadFrame(context.Background(), &f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Seq != uint64(i) || !f.Captured.Equal(clock.Now()) || f.Y[0] != luma || f.Y[7] != luma || f.Width != 4 {
			t.Errorf("frame %d: Seq %d, Captured %v (now %v), luma %d..%d, width %d", i, f.Seq, f.Captured, clock.Now(), f.Y[0], f.Y[7], f.Width)
		}
		if n := dev.outstanding(); n != 0 {
			t.Errorf("frame %d: %d kernel buffers not given back", i, n)
		}
	}
	if cam.Dropped() != 1 {
		t.Errorf("Dropped = %d, want 1", cam.Dropped())
	}
}

func TestCameraUnplug(t *testing.T) {
	for _, tc := range []struct {
		name      string
		s         step
		gone      bool
		unplugged bool
		cause     error
	}{
		{"dequeue ENODEV", step{deqErr: syscall.ENODEV}, false, true, syscall.ENODEV},
		{"wait ENODEV", step{waitErr: syscall.ENODEV}, false, true, syscall.ENODEV},
		{"EIO, node gone", step{deqErr: syscall.EIO}, true, true, syscall.EIO},
		{"EIO, node there", step{deqErr: syscall.EIO}, false, false, syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := sim.NewFakeClock(epoch)
			dev := newFakeDevice(t, clock, step{buf: yuyvFrame(1)}, tc.s)
			gone := false
			cam := newTestCamera(dev, func() bool { return gone })
			defer cam.Close()
			var f hal.Frame
			if err := cam.ReadFrame(context.Background(), &f); err != nil {
				t.Fatal(err)
			}
			gone = tc.gone
			err := cam.ReadFrame(context.Background(), &f)
			if errors.Is(err, ErrUnplugged) != tc.unplugged || !errors.Is(err, tc.cause) {
				t.Errorf("err = %v; want unplugged %v, caused by %v", err, tc.unplugged, tc.cause)
			}
		})
	}
}

func TestCameraStall(t *testing.T) {
	for _, gone := range []bool{false, true} {
		clock := sim.NewFakeClock(epoch)
		dev := newFakeDevice(t, clock)
		cam := newTestCamera(dev, func() bool { return gone })
		err := cam.ReadFrame(context.Background(), &hal.Frame{})
		want := ErrStalled
		if gone {
			want = ErrUnplugged
		}
		if !errors.Is(err, want) {
			t.Errorf("gone %v: err = %v, want %v", gone, err, want)
		}
		// 3 s of read timeout in waits of at most pollInterval.
		if dev.waits != 3 || clock.Now().Sub(epoch) != 3*time.Second {
			t.Errorf("gone %v: %d waits over %v, want 3 over 3s", gone, dev.waits, clock.Now().Sub(epoch))
		}
		cam.Close()
	}
}

func TestCameraHonoursContext(t *testing.T) {
	clock := sim.NewFakeClock(epoch)
	dev := newFakeDevice(t, clock)
	ctx, cancel := context.WithCancel(context.Background())
	dev.onWait = func(n int) {
		if n == 2 {
			cancel()
		}
	}
	cam := newTestCamera(dev, nil)
	defer cam.Close()
	err := cam.ReadFrame(ctx, &hal.Frame{})
	if !errors.Is(err, context.Canceled) || dev.waits != 2 {
		t.Errorf("err = %v after %d waits; want context.Canceled after the wait it was cancelled in", err, dev.waits)
	}
	if err := cam.ReadFrame(ctx, &hal.Frame{}); !errors.Is(err, context.Canceled) || dev.waits != 2 {
		t.Errorf("with a cancelled context: err = %v after %d waits, want no wait", err, dev.waits)
	}
}

func TestCameraCloseWaitsForRead(t *testing.T) {
	defer goleak.VerifyNone(t)
	clock := sim.NewFakeClock(epoch)
	dev := newFakeDevice(t, clock)
	inWait, release := make(chan struct{}), make(chan struct{})
	dev.onWait = func(n int) {
		if n == 1 {
			close(inWait)
			<-release
		}
	}
	cam := newTestCamera(dev, nil)
	read := make(chan error)
	go func() { read <- cam.ReadFrame(context.Background(), &hal.Frame{}) }()
	<-inWait
	closed := make(chan error)
	go func() { closed <- cam.Close() }()
	// A Close that closed the device under the read would be reported by the fake; give
	// it the chance before the read lets go.
	time.Sleep(20 * time.Millisecond)
	close(release)
	if err := <-read; !errors.Is(err, hal.ErrClosed) {
		t.Errorf("read = %v, want hal.ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
	if !dev.closed {
		t.Error("device not closed")
	}
	if err := cam.ReadFrame(context.Background(), &hal.Frame{}); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("read after Close = %v, want hal.ErrClosed", err)
	}
	if err := cam.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}
