package appliance

import (
	"context"
	"time"

	"roombox/appliance/store"
	"roombox/control"
	"roombox/hal"
	"roombox/media"
	"roombox/media/apm"
	"roombox/webui"
)

// newProcessor returns the microphone's processing (echo cancellation, noise suppression,
// gain) at the defaults, or nil when the microphone's format is not the processor's or the
// library does not start: the box then sends its microphone unprocessed, which is better
// than no audio. With a speaker, what it plays is the canceller's reference.
func (d *daemon) newProcessor(mic hal.AudioIn) *apm.Processor {
	f := mic.Format()
	if f.SampleRate != media.OpusSampleRate || f.Channels != 1 {
		d.log.Warn("audio processing off: the microphone is not 48 kHz mono", "rate", f.SampleRate, "channels", f.Channels)
		return nil
	}
	// The microphone holds about one period before ReadPCM returns it.
	d.micDelay = time.Duration(f.FrameSamples) * time.Second / time.Duration(f.SampleRate)
	proc, err := apm.New(apmConfig(control.DefaultAudio, d.micDelay))
	if err != nil {
		d.log.Warn("audio processing off", "err", err)
		return nil
	}
	// A microphone that tells how much it holds unread (ALSA) lets the canceller place the
	// far end on its clock even when the capture goroutine falls behind.
	if r, ok := mic.(hal.DelayReporter); ok {
		proc.CaptureFrom(r)
	}
	d.procSettings = control.DefaultAudio
	if d.playback != nil {
		d.playback.SetFarEnd(proc)
	}
	return proc
}

// apmConfig is the processor's configuration for the settings s. The high-pass filter is
// always on (it only removes rumble below speech), and voice detection feeds the speaking
// flag.
func apmConfig(s control.AudioSettings, captureDelay time.Duration) apm.Config {
	return apm.Config{
		EchoCancellation: s.EchoCancellation,
		NoiseSuppression: apm.NoiseSuppression(control.NoiseIndex(s.NoiseSuppression)),
		GainControl:      s.AutoGain,
		InputGainDB:      s.InputGainDB,
		HighPassFilter:   true,
		VoiceDetection:   true,
		CaptureDelay:     captureDelay,
	}
}

// audioSettings are the settings in force with the saved state st.
func audioSettings(st store.SavedState) control.AudioSettings {
	return st.Audio.Apply(control.DefaultAudio)
}

// applyAudioLocked brings the pipeline (sensitivity, DTX) and the processor to the settings
// of st if they changed; under d.mu, from applyLocked.
func (d *daemon) applyAudioLocked(st store.SavedState) {
	s := audioSettings(st)
	if d.audio != nil {
		// Settings are checked before they are recorded.
		_ = d.audio.SetSensitivity(s.InputSensitivity)
		d.audio.SetDTX(s.DTX)
	}
	if d.proc == nil || s == d.procSettings {
		return
	}
	if err := d.proc.SetConfig(apmConfig(s, d.micDelay)); err != nil {
		// Settings are checked before they are recorded; this is the library refusing.
		d.log.Error("audio processing settings", "err", err)
		return
	}
	d.procSettings = s
}

// meter reads the microphone's level for the page.
func (d *daemon) meter() webui.MicLevel {
	level, voice := d.audio.Meter()
	return webui.MicLevel{Level: level, Speaking: voice}
}

// SetAudio changes the microphone's processing and persists it (control.Controller).
func (d *daemon) SetAudio(ctx context.Context, p control.AudioPatch) error {
	if err := p.Check(); err != nil {
		return err
	}
	return d.update(ctx, func(st *store.SavedState) { st.Audio = st.Audio.Merge(p) })
}
