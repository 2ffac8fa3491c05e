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
	// The last period put: its first sample's index, and when that sample is heard on the
	// capture side's clock.
	anchor      int64
	anchorHeard time.Duration
	// The capture side's clock is the microphone's audio: frames read, each frameDuration,
	// plus, when the microphone tells (readAt set), what it held unread at the last read
	// (backlog) and the time since. A capture side that falls behind (a busy CPU) then
	// still places the far end where the microphone hears it.
	tick    int64
	backlog time.Duration
	readAt  time.Time
}

// clock is the capture side's clock at now.
func (q *farQueue) clock(now time.Time) time.Duration {
	c := time.Duration(q.tick) * frameDuration
	if !q.readAt.IsZero() {
		c += q.backlog + now.Sub(q.readAt)
	}
	return c
}

// put queues pcm, whose first sample is heard delay after now. If the capture side is not
// taking (stopped, or far behind), the oldest samples are dropped.
func (q *farQueue) put(pcm []int16, delay time.Duration, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.anchor, q.anchorHeard = q.write, q.clock(now)+delay
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
	heard = q.anchorHeard + samplesToDuration(q.read-q.anchor) - time.Duration(q.tick)*frameDuration
	if !first && heard >= 0 {
		return 0, false
	}
	for i := range dst[:Frame] {
		dst[i] = q.ring[(q.read+int64(i))%farRing]
	}
	q.read += Frame
	return heard, true
}

// captured advances the capture side's clock by a frame, read at readAt with backlog
// still unread (zero readAt: the microphone does not tell).
func (q *farQueue) captured(readAt time.Time, backlog time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tick++
	q.readAt, q.backlog = readAt, backlog
}

func samplesToDuration(n int64) time.Duration {
	return time.Duration(n) * time.Second / media.OpusSampleRate
}
