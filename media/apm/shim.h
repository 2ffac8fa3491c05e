/* The C face of WebRTC AudioProcessing 0.3 that apm.go calls through cgo: one processor at
   48 kHz mono in 10 ms frames, echo cancellation in the extended-filter, delay-agnostic mode. */
#ifndef ROOMBOX_APM_SHIM_H
#define ROOMBOX_APM_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Samples in one frame: 10 ms at 48 kHz. */
#define RB_APM_FRAME 480

typedef struct rb_apm rb_apm;

typedef struct {
	int echo_cancellation;
	int noise_suppression; /* -1 off, else webrtc::NoiseSuppression::Level (0 low .. 3 very high) */
	int gain_control;      /* adaptive digital */
	int high_pass_filter;
	int voice_detection; /* speech flag and level estimator */
} rb_apm_config;

/* rb_apm_new returns a processor with every component off, or NULL with *err set to the
   library's error code. */
rb_apm *rb_apm_new(int *err);
void rb_apm_free(rb_apm *a);

/* rb_apm_configure applies c; it returns 0 or the first component's error code. */
int rb_apm_configure(rb_apm *a, rb_apm_config c);

/* rb_apm_reverse analyzes one far-end frame. */
int rb_apm_reverse(rb_apm *a, const int16_t *frame);

/* rb_apm_capture processes one near-end frame in place, its echo delay_ms (0..500) behind the
   far end. It returns a negative error code, or the frame's level (0..127 -dBov, 127 when
   voice detection is off) with bit 8 set if it holds speech. */
int rb_apm_capture(rb_apm *a, int16_t *frame, int delay_ms);

#ifdef __cplusplus
}
#endif

#endif
