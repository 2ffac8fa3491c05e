package sim

import (
	"time"

	"roombox/hal/sim/acoustic"
)

// echoPath places the speaker's and the microphone's periods on the room's timeline by the
// time they are played and recorded, so the echo lines up sample for sample whichever
// device started first or skipped ahead after falling behind.
type echoPath struct {
	room  *acoustic.Room
	epoch time.Time // timeline index 0
}

// index is the timeline index of sample n of a device whose sample 0 was due at start.
func (e *echoPath) index(start time.Time, n int64) int64 {
	d := start.Sub(e.epoch)
	return int64(d/time.Second)*SampleRate + int64(d%time.Second)*SampleRate/int64(time.Second) + n
}

func (e *echoPath) play(start time.Time, n int64, pcm []int16) {
	e.room.Play(e.index(start, n), pcm)
}

func (e *echoPath) capture(start time.Time, n int64, pcm []int16) {
	e.room.Capture(e.index(start, n), pcm)
}
