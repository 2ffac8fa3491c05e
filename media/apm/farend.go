package apm

import (
	"sync"
	"time"

	"roombox/media"
)

// farRing is how much far end the queue holds: 341 ms, four of the longest speaker periods
// (4096 samples) we expect (a speaker keeps up to two queued).
const farRing = 1 << 14

// farQueue carries the far end from the playback goroutine to the capture goroutine. The
// speaker's periods may be of any length and come in bursts; the canceller copes best with
// the far end analysed a frame per captured frame, so put queues what is played and the
// capture side takes it evenly, with the time until each frame is heard.
type farQueue struct {
	mu          sync.Mutex
	ring        [farRing]int16
	read, write int64 // samples taken and put since the start
	// The last period put: its first sample's index, how long after it was put that sample
	// is heard, and the capture side's clock then.
	anchor      int64
	anchorDelay time.Duration
	anchorTick  int64
	// The capture side's clock: frames captured, each frameDuration.
	tick int64
}

// put queues pcm, whose first sample is heard delay from now. If the capture side is not
// taking (stopped, or far behind), the oldest samples are dropped.
func (q *farQueue) put(pcm []int16, delay time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.anchor, q.anchorDelay, q.anchorTick = q.write, delay, q.tick
	if len(pcm) > farRing {
		q.write += int64(len(pcm) - farRing)
		pcm = pcm[len(pcm)-farRing:]
	}
	for _, v := range pcm {
		q.ring[q.write%farRing] = v
		q.write++
	}
	q.read = max(q.read, q.write-farRing)
}

// take copies the next frame into dst (Frame samples) and returns how long from now its
// first sample is heard. The first take for a captured frame gets a frame if one is queued;
// further takes only while the next frame is already being heard (the capture side is
// behind: it started late, or its clock runs slow).
func (q *farQueue) take(dst []int16, first bool) (heard time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.write-q.read < Frame {
		return 0, false
	}
	heard = q.anchorDelay + samplesToDuration(q.read-q.anchor) - time.Duration(q.tick-q.anchorTick)*frameDuration
	if !first && heard >= 0 {
		return 0, false
	}
	for i := range dst[:Frame] {
		dst[i] = q.ring[(q.read+int64(i))%farRing]
	}
	q.read += Frame
	return heard, true
}

// captured advances the capture side's clock by a frame.
func (q *farQueue) captured() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tick++
}

func samplesToDuration(n int64) time.Duration {
	return time.Duration(n) * time.Second / media.OpusSampleRate
}
