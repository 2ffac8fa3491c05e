package apm

import (
	"testing"
	"time"
)

// TestFarQueue: a frame per captured frame, each with the time until it is heard; extra
// frames only when the next one is already being heard; overflow drops the oldest.
func TestFarQueue(t *testing.T) {
	var q farQueue
	pcm := make([]int16, 2048)
	for i := range pcm {
		pcm[i] = int16(i)
	}
	dst := make([]int16, Frame)
	q.put(pcm, 30*ms, time.Now()) // heard 30 ms from now
	for k, want := range []time.Duration{30 * ms, 30 * ms, 30 * ms, 30 * ms} {
		heard, ok := q.take(dst, true)
		if !ok || heard != want || dst[0] != int16(k*Frame) {
			t.Fatalf("take %d: (%v, %v) starting with %d, want (%v, true) starting with %d", k, heard, ok, dst[0], want, k*Frame)
		}
		if _, ok := q.take(dst, false); ok {
			t.Fatalf("take %d: a second frame while the next is not heard yet", k)
		}
		q.captured(time.Time{}, 0) // 10 ms pass; the next frame starts 10 ms later in the period too
	}
	if _, ok := q.take(dst, true); ok {
		t.Fatal("took a frame from 128 queued samples")
	}
	// The capture side fell behind: 30 ms passed without frames taken, so the frames of a
	// period heard from then on are late; it catches up to the first one still to come.
	q = farQueue{}
	q.put(pcm, 0, time.Now())
	for range 3 {
		q.captured(time.Time{}, 0)
	}
	n := 0
	for first := true; ; first = false {
		if _, ok := q.take(dst, first); !ok {
			break
		}
		n++
	}
	if n != 3 || dst[0] != 2*Frame {
		t.Errorf("took %d frames, the last starting with %d; want 3, the last starting with %d", n, dst[0], 2*Frame)
	}
	// Overflow: the oldest samples go.
	big := make([]int16, farRing+Frame)
	big[Frame] = 7
	q.put(big, 0, time.Now())
	if q.write-q.read != farRing {
		t.Errorf("%d samples queued after overflow, want %d", q.write-q.read, farRing)
	}
	if _, ok := q.take(dst, true); !ok || dst[0] != 7 {
		t.Errorf("after overflow the first frame starts with %d, want the newest samples (7)", dst[0])
	}
}

// TestFarQueueFollowsTheMicrophone: with a microphone that tells what it holds unread, a
// period played while the capture side is behind is placed where the microphone will hear
// it, not where the capture side has read up to.
func TestFarQueueFollowsTheMicrophone(t *testing.T) {
	var q farQueue
	dst := make([]int16, Frame)
	t0 := time.Now()
	// Frame 0 read at t0 with 100 ms more captured and unread; 5 ms later a period is
	// played that is heard 40 ms after that: 145 ms after frame 1 starts on the
	// microphone's clock, where reading frame 1 is concerned.
	q.captured(t0, 100*ms)
	q.put(make([]int16, 4*Frame), 40*ms, t0.Add(5*ms))
	if heard, ok := q.take(dst, true); !ok || heard != 145*ms {
		t.Fatalf("take = (%v, %v), want (145ms, true)", heard, ok)
	}
	// The capture side catches up, reading the backlog at once: a far-end frame per frame
	// read keeps its place, 145 ms after the frame read, whatever the backlog says then.
	for k := 1; k <= 3; k++ {
		q.captured(t0.Add(6*ms), time.Duration(100-10*k)*ms)
		if heard, ok := q.take(dst, true); !ok || heard != 145*ms {
			t.Fatalf("take after %d more frames = (%v, %v), want (145ms, true)", k, heard, ok)
		}
	}
}
