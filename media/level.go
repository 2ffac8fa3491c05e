package media

import (
	"math"
	"time"

	"github.com/pion/webrtc/v4/pkg/media"
)

// SilentLevel is the RFC 6464 level of digital silence: -127 dBov.
const SilentLevel = 127

// Level is a frame's RFC 6464 audio level: its RMS in -dBov relative to a full-scale
// square wave of 16-bit samples, 0 (loudest) to SilentLevel, as WebRTC computes it.
func Level(pcm []int16) uint8 {
	var sum float64
	for _, v := range pcm {
		sum += float64(v) * float64(v)
	}
	if sum == 0 || len(pcm) == 0 {
		return SilentLevel
	}
	db := -10 * math.Log10(sum/float64(len(pcm))/(32767*32767))
	return uint8(min(max(math.Round(db), 0), SilentLevel))
}

// VoiceDetector is a stage that also says whether the frame it last processed holds
// speech (media/apm's Processor). The pipeline uses its verdict for the voice flag the
// audio-level header extension carries.
type VoiceDetector interface {
	Last() (level uint8, voice bool)
}

// LevelWriter takes each encoded sample with the level and voice flag of the audio it
// holds, for the RTP audio-level header extension (signaling.AudioTrack). A pipeline whose
// writer is one gives it every sample this way.
type LevelWriter interface {
	WriteLevelSample(s media.Sample, level uint8, voice bool) error
}

// SensitivityHangover is how long the input sensitivity's gate stays open after the last
// frame at or above its threshold, so quiet word endings and pauses between words are sent.
const SensitivityHangover = 300 * time.Millisecond
