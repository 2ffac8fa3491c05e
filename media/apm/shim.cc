// See shim.h. No C++ exception may unwind into Go: creation, the only place that allocates,
// catches them; processing a frame allocates nothing.
#include "shim.h"

#include <string.h>

#include <new>

#include <webrtc/modules/audio_processing/include/audio_processing.h>
#include <webrtc/modules/interface/module_common_types.h>

using webrtc::AudioProcessing;

struct rb_apm {
	AudioProcessing *apm;
	webrtc::AudioFrame capture; // the library's frame type; samples are copied in and out
	webrtc::AudioFrame reverse;
};

static const int kRate = 48000;

static void frame_format(webrtc::AudioFrame *f) {
	f->sample_rate_hz_ = kRate;
	f->num_channels_ = 1;
	f->samples_per_channel_ = RB_APM_FRAME;
}

#define RETURN_ON_ERR(expr)                              \
	do {                                             \
		int err_ = (expr);                       \
		if (err_ != AudioProcessing::kNoError) { \
			return err_;                     \
		}                                        \
	} while (0)

// setup sets what never changes. Done once: some setters re-initialize their component
// (GainControl::set_mode resets the gain it has learned).
static int setup(AudioProcessing *apm) {
	// 0.3's AudioFrame interface wants the reverse stream at the capture rate, and the
	// capture rate is 16 kHz until initialized: without this the first far-end frame fails
	// with kBadSampleRateError.
	RETURN_ON_ERR(apm->Initialize(kRate, kRate, kRate, AudioProcessing::kMono, AudioProcessing::kMono,
	                              AudioProcessing::kMono));

	webrtc::EchoCancellation *ec = apm->echo_cancellation();
	RETURN_ON_ERR(ec->enable_drift_compensation(false)); // one clock: the board's
	// The suppressor after the linear filter removes the echo the filter leaves, and takes
	// some of a near-end talker with it while the far end talks. Low suppression still gives
	// ~40 dB ERLE in the tests' room; it attenuates double talk by ~5.5 dB, moderate by 8.2
	// and high by 12.4 (media/apm's TestDoubleTalk).
	RETURN_ON_ERR(ec->set_suppression_level(webrtc::EchoCancellation::kLowSuppression));

	// Adaptive digital: the gain is applied to the samples (the board has no analog mic
	// gain the library could drive), towards -3 dBFS peaks, up to 9 dB of compression gain,
	// with the limiter.
	webrtc::GainControl *gc = apm->gain_control();
	RETURN_ON_ERR(gc->set_mode(webrtc::GainControl::kAdaptiveDigital));
	RETURN_ON_ERR(gc->set_target_level_dbfs(3));
	RETURN_ON_ERR(gc->set_compression_gain_db(9));
	RETURN_ON_ERR(gc->enable_limiter(true));
	return AudioProcessing::kNoError;
}

extern "C" rb_apm *rb_apm_new(int *err) {
	rb_apm *a = new (std::nothrow) rb_apm();
	if (a == NULL) {
		*err = AudioProcessing::kCreationFailedError;
		return NULL;
	}
	// The extended filter covers 128 ms of echo tail instead of 48 and copes with wrong
	// reported delays; delay-agnostic mode estimates the delay from the signals, so a
	// speaker that reports none (or a wrong one) is still cancelled.
	try {
		webrtc::Config config;
		config.Set<webrtc::ExtendedFilter>(new webrtc::ExtendedFilter(true));
		config.Set<webrtc::DelayAgnostic>(new webrtc::DelayAgnostic(true));
		a->apm = AudioProcessing::Create(config);
		*err = a->apm == NULL ? AudioProcessing::kCreationFailedError : setup(a->apm);
	} catch (...) {
		*err = AudioProcessing::kCreationFailedError;
	}
	if (*err != AudioProcessing::kNoError) {
		rb_apm_free(a);
		return NULL;
	}
	frame_format(&a->capture);
	frame_format(&a->reverse);
	return a;
}

extern "C" void rb_apm_free(rb_apm *a) {
	delete a->apm;
	delete a;
}

// rb_apm_configure only switches components and sets the noise suppressor's level: enabling
// one that is on, or setting the level it has, leaves its state alone; switching one on
// starts it afresh.
extern "C" int rb_apm_configure(rb_apm *a, rb_apm_config c) {
	AudioProcessing *apm = a->apm;
	RETURN_ON_ERR(apm->echo_cancellation()->Enable(c.echo_cancellation != 0));
	webrtc::NoiseSuppression *ns = apm->noise_suppression();
	if (c.noise_suppression >= 0 && ns->level() != c.noise_suppression) {
		RETURN_ON_ERR(ns->set_level(static_cast<webrtc::NoiseSuppression::Level>(c.noise_suppression)));
	}
	RETURN_ON_ERR(ns->Enable(c.noise_suppression >= 0));
	RETURN_ON_ERR(apm->gain_control()->Enable(c.gain_control != 0));
	RETURN_ON_ERR(apm->high_pass_filter()->Enable(c.high_pass_filter != 0));
	RETURN_ON_ERR(apm->voice_detection()->Enable(c.voice_detection != 0));
	RETURN_ON_ERR(apm->level_estimator()->Enable(c.voice_detection != 0));
	return AudioProcessing::kNoError;
}

extern "C" int rb_apm_reverse(rb_apm *a, const int16_t *frame) {
	memcpy(a->reverse.data_, frame, RB_APM_FRAME * sizeof(int16_t));
	return a->apm->ProcessReverseStream(&a->reverse);
}

extern "C" int rb_apm_capture(rb_apm *a, int16_t *frame, int delay_ms) {
	AudioProcessing *apm = a->apm;
	memcpy(a->capture.data_, frame, RB_APM_FRAME * sizeof(int16_t));
	// "Must be called if and only if echo processing is enabled" (audio_processing.h).
	if (apm->echo_cancellation()->is_enabled()) {
		apm->set_stream_delay_ms(delay_ms);
	}
	int err = apm->ProcessStream(&a->capture);
	if (err != AudioProcessing::kNoError && err != AudioProcessing::kBadStreamParameterWarning) {
		return err;
	}
	memcpy(frame, a->capture.data_, RB_APM_FRAME * sizeof(int16_t));
	int level = 127, voice = 0;
	if (apm->level_estimator()->is_enabled()) {
		level = apm->level_estimator()->RMS(); // since the last call: this frame
	}
	if (apm->voice_detection()->is_enabled()) {
		voice = apm->voice_detection()->stream_has_voice() ? 1 : 0;
	}
	return level | voice << 8;
}
