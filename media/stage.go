package media

import "time"

// StageSamples is the length of the frames audio stages take: 10 ms of 48 kHz mono, the
// frame WebRTC's AudioProcessing and speexdsp work in.
const StageSamples = OpusSampleRate / 100

// AudioStage processes captured audio in place, one StageSamples frame at a time, on the
// audio pipeline's goroutine, before the mute gate and the encoder: echo cancellation,
// noise suppression, gain control. A stage keeps running while the mic is muted (a
// canceller keeps adapting); the gate after it is what mutes.
type AudioStage interface {
	ProcessCapture(frame []int16) error
}

// FarEnd receives what the speaker plays, for an echo canceller's reference: every sample
// the playback writes, mono, after the mix, the volume and the speaker mute (a deaf speaker
// gives silence), in the order played and in the speaker's periods. delay is how long the
// first of them will wait in the speaker's buffer before it is heard (0 when the speaker
// cannot tell). Played runs on the playback's goroutine and must not block.
type FarEnd interface {
	Played(pcm []int16, delay time.Duration)
}
