package alsa

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// fakeLoop models snd-aloop on the wall clock: one device timeline at 48 kHz from the
// loop's creation; a sample written for playback plays at the timeline position after
// those already queued, and the capture end reads the timeline as it passes. Playback
// that runs dry underruns, as the kernel's does.
type fakeLoop struct {
	mu       sync.Mutex
	start    time.Time
	timeline []int16 // what plays at each frame; zero where nothing was queued
	wpos     int     // timeline frame the next written sample plays at
	running  bool    // playback started and not underrun
	rpos     int     // next timeline frame the capture end reads
	deaf     bool    // the capture end hears silence: a broken loop
}

func newFakeLoop(d time.Duration) *fakeLoop {
	return &fakeLoop{start: time.Now(), timeline: make([]int16, int(d.Seconds()*SampleRate))}
}

func (l *fakeLoop) now() int { return int(time.Since(l.start) * SampleRate / time.Second) }

// loopEnd is one end of a fakeLoop as a pcm.
type loopEnd struct {
	l       *fakeLoop
	capture bool
}

func (e loopEnd) transfer(b []byte) (int, error) {
	l := e.l
	l.mu.Lock()
	defer l.mu.Unlock()
	s := unsafe.Slice((*int16)(unsafe.Pointer(&b[0])), len(b)/2)
	now := min(l.now(), len(l.timeline))
	if e.capture {
		n := min(len(s), now-l.rpos)
		if n <= 0 {
			return 0, errAgain
		}
		copy(s[:n], l.timeline[l.rpos:])
		if l.deaf {
			clear(s[:n])
		}
		l.rpos += n
		return n, nil
	}
	if !l.running {
		l.running, l.wpos = true, now
	}
	if l.wpos < now {
		l.running = false
		return 0, errXrun
	}
	n := min(len(s), mono16.BufferFrames-(l.wpos-now), len(l.timeline)-l.wpos)
	if n <= 0 {
		return 0, errAgain
	}
	copy(l.timeline[l.wpos:], s[:n])
	l.wpos += n
	return n, nil
}

func (e loopEnd) wait(d time.Duration) error {
	time.Sleep(min(d, time.Millisecond))
	return nil
}

// delay is what the loop holds: written and not yet played (playback), or played and not
// yet read (capture).
func (e loopEnd) delay() (int, error) {
	l := e.l
	l.mu.Lock()
	defer l.mu.Unlock()
	now := min(l.now(), len(l.timeline))
	if e.capture {
		return now - l.rpos, nil
	}
	return max(l.wpos-now, 0), nil
}

func (e loopEnd) prepare() error { return nil }
func (e loopEnd) resume() error  { return nil }
func (e loopEnd) close() error   { return nil }

func useFakeLoop(t *testing.T, l *fakeLoop) {
	saved := openPCM
	openPCM = func(name string, capture bool, periods int) (pcm, Params, error) {
		return loopEnd{l: l, capture: capture}, mono16, nil
	}
	t.Cleanup(func() { openPCM = saved })
}

func TestCheckLoopbackMeasuresToneLatencyAndXrun(t *testing.T) {
	useFakeLoop(t, newFakeLoop(5*time.Second))
	rep, err := CheckLoopback(context.Background(), "hw:Loopback,0,0", "hw:Loopback,1,0")
	t.Log(rep)
	if err != nil {
		t.Fatal(err)
	}
	// The median over blocks reads -10 unless xruns (this test's goroutines starved for
	// 20 ms on a loaded machine) left gaps in most blocks.
	if rep.ToneDBFS < -10.2 || rep.ToneDBFS > -9.8 {
		t.Errorf("tone at %.2f dBFS through a lossless loop, want -10", rep.ToneDBFS)
	}
	// The tone cannot arrive before it is handed over, and it cannot take longer than
	// the whole check: a sign or unit error would show here.
	if rep.Latency <= 0 || rep.Latency > time.Second {
		t.Errorf("latency %v", rep.Latency)
	}
	if rep.Xruns == 0 {
		t.Error("the gap in playback counted no underrun")
	}
}

func TestCheckLoopbackFailsOnASilentLoop(t *testing.T) {
	l := newFakeLoop(5 * time.Second)
	l.deaf = true
	useFakeLoop(t, l)
	_, err := CheckLoopback(context.Background(), "hw:Loopback,0,0", "hw:Loopback,1,0")
	if err == nil || !strings.Contains(err.Error(), "not captured") {
		t.Errorf("CheckLoopback on a loop that passes nothing: %v", err)
	}
}
