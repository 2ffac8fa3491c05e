package media

/*
#cgo pkg-config: x264
#include <stdint.h>
#include <stdlib.h>
#include <x264.h>

typedef struct {
	x264_t *h;
	x264_param_t param;
	x264_picture_t in, out;
	uint8_t *data; // payload of the last Encode; x264 keeps an access unit's NALs contiguous
} rb_x264;

static int rb_x264_open(rb_x264 *s, const char *preset, int threads, int w, int h, int fps,
                        int keyint, int level, int kbps, int vbv_kbit) {
	x264_param_t *p = &s->param;
	if (x264_param_default_preset(p, preset, "zerolatency") < 0) return -1;
	p->i_threads = threads;
	p->i_width = w;
	p->i_height = h;
	p->i_csp = X264_CSP_I420;
	p->i_fps_num = fps;
	p->i_fps_den = 1;
	p->i_timebase_num = 1;
	p->i_timebase_den = fps;
	p->b_vfr_input = 0;
	p->i_keyint_max = keyint;
	p->i_level_idc = level;
	p->rc.i_rc_method = X264_RC_ABR;
	p->rc.i_bitrate = kbps;
	p->rc.i_vbv_max_bitrate = kbps;
	p->rc.i_vbv_buffer_size = vbv_kbit;
	p->b_repeat_headers = 1;
	p->b_annexb = 1;
	p->b_aud = 0;
	p->i_log_level = X264_LOG_ERROR;
	if (x264_param_apply_profile(p, "baseline") < 0) return -2;
	s->h = x264_encoder_open(p);
	if (!s->h) return -3;
	x264_encoder_parameters(s->h, p);
	x264_picture_init(&s->in);
	s->in.img.i_csp = X264_CSP_I420;
	s->in.img.i_plane = 3;
	return 0;
}

// rb_x264_encode encodes one picture whose planes are Go memory. The plane pointers are
// cleared before returning (cgo: C must not keep Go pointers); x264 copies the picture
// into its own frame during the call.
static int rb_x264_encode(rb_x264 *s, uint8_t *y, uint8_t *u, uint8_t *v, int sy, int suv,
                          int64_t pts, int idr) {
	x264_nal_t *nals;
	int n;
	s->in.img.plane[0] = y;
	s->in.img.plane[1] = u;
	s->in.img.plane[2] = v;
	s->in.img.i_stride[0] = sy;
	s->in.img.i_stride[1] = suv;
	s->in.img.i_stride[2] = suv;
	s->in.i_pts = pts;
	s->in.i_type = idr ? X264_TYPE_IDR : X264_TYPE_AUTO;
	int size = x264_encoder_encode(s->h, &nals, &n, &s->in, &s->out);
	s->in.img.plane[0] = s->in.img.plane[1] = s->in.img.plane[2] = NULL;
	s->data = size > 0 ? nals[0].p_payload : NULL;
	return size;
}

static int rb_x264_set_bitrate(rb_x264 *s, int kbps, int vbv_kbit) {
	x264_encoder_parameters(s->h, &s->param);
	s->param.rc.i_bitrate = kbps;
	s->param.rc.i_vbv_max_bitrate = kbps;
	s->param.rc.i_vbv_buffer_size = vbv_kbit;
	return x264_encoder_reconfig(s->h, &s->param);
}

static void rb_x264_close(rb_x264 *s) {
	if (s->h) x264_encoder_close(s->h);
	free(s);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"roombox/hal"
)

// X264Config configures the software H.264 encoder. Zero fields take the defaults.
type X264Config struct {
	// EncoderConfig is what every encoder takes: even Width and Height (required), and
	// hal.EncoderConfig's defaults for the rest.
	hal.EncoderConfig
	// Preset is an x264 speed preset; default "ultrafast". Threads is x264's thread count,
	// with slice threading (no added latency); default 2 from 1280x720 up, else 1.
	// Measured on a 2-core x86 (BenchmarkX264Encode*): superfast costs about 30 % more CPU
	// than ultrafast for about +1.5 dB Y-PSNR at 300 kbit/s (360p test pattern); a second
	// thread cuts wall time per 720p frame by about 27 % at the same CPU, but only adds CPU
	// at 360p.
	Preset  string
	Threads int
}

// vbvWindow sizes the rate control's buffer as this much time at the target bitrate: the
// most an encoded burst (a keyframe) can run ahead of the rate on the wire.
const vbvWindow = 500 * time.Millisecond

// ErrClosedEncoder is returned by an encoder used after Close.
var ErrClosedEncoder = errors.New("media: encoder closed")

// X264 is a software H.264 encoder (libx264): constrained baseline at the level its picture
// size and rate need (H264Level: 3.0 for 360p30, 3.1 for 720p30 like the 42e01f the SFU
// negotiates, 4.0 for 1080p30), tuned for zero latency (no B-frames, no lookahead), Annex-B with SPS and PPS before every IDR.
// It is not safe for concurrent use; the Video pipeline serialises calls.
type X264 struct {
	c    *C.rb_x264
	w, h int
	pts  int64
}

// NewX264 opens an encoder.
func NewX264(cfg X264Config) (*X264, error) {
	cfg.EncoderConfig = cfg.WithDefaults()
	if cfg.Preset == "" {
		cfg.Preset = "ultrafast"
	}
	if cfg.Threads == 0 {
		cfg.Threads = 1
		if cfg.Width*cfg.Height >= 1280*720 {
			cfg.Threads = 2
		}
	}
	switch {
	case cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width%2 != 0 || cfg.Height%2 != 0:
		return nil, fmt.Errorf("media: x264: picture %dx%d must have positive even sides", cfg.Width, cfg.Height)
	case cfg.FPS < 0 || cfg.KeyInterval < 0 || cfg.Threads < 0:
		return nil, fmt.Errorf("media: x264: negative rate, key interval or thread count")
	case cfg.Bitrate < 1000:
		return nil, fmt.Errorf("media: x264: bitrate %d bit/s is too low", cfg.Bitrate)
	}
	c := (*C.rb_x264)(C.calloc(1, C.sizeof_rb_x264))
	if c == nil {
		return nil, errors.New("media: x264: out of memory")
	}
	preset := C.CString(cfg.Preset)
	defer C.free(unsafe.Pointer(preset))
	kbps, vbv := rateParams(cfg.Bitrate)
	if rc := C.rb_x264_open(c, preset, C.int(cfg.Threads), C.int(cfg.Width), C.int(cfg.Height),
		C.int(cfg.FPS), C.int(cfg.KeyInterval), C.int(H264Level(cfg.Width, cfg.Height, cfg.FPS)), kbps, vbv); rc != 0 {
		C.rb_x264_close(c)
		return nil, fmt.Errorf("media: x264: cannot open %dx%d@%d preset %q (step %d)", cfg.Width, cfg.Height, cfg.FPS, cfg.Preset, -rc)
	}
	return &X264{c: c, w: cfg.Width, h: cfg.Height}, nil
}

// OpenX264 opens an x264 encoder with the default preset and threads: the encoder factory
// NewVideo takes, when the board has no hardware encoder.
func OpenX264(cfg hal.EncoderConfig) (hal.VideoEncoder, error) {
	return NewX264(X264Config{EncoderConfig: cfg})
}

func rateParams(bps int) (kbps, vbvKbit C.int) {
	k := max(bps/1000, 1)
	return C.int(k), C.int(max(int(int64(k)*int64(vbvWindow)/int64(time.Second)), 1))
}

// Encode compresses f, an IDR if forceKey. The returned Data is x264's own output buffer,
// not a copy (a 720p picture's worth of Go heap per encoder, and a copy per frame, saved),
// valid until the next call, Close included.
func (e *X264) Encode(f *hal.Frame, forceKey bool) (hal.EncodedFrame, error) {
	if e.c == nil {
		return hal.EncodedFrame{}, ErrClosedEncoder
	}
	if f.Width != e.w || f.Height != e.h {
		return hal.EncodedFrame{}, fmt.Errorf("media: x264: frame is %dx%d, encoder %dx%d", f.Width, f.Height, e.w, e.h)
	}
	if !planesFit(f) {
		return hal.EncodedFrame{}, fmt.Errorf("media: x264: frame planes are too small for %dx%d", f.Width, f.Height)
	}
	idr := C.int(0)
	if forceKey {
		idr = 1
	}
	n := C.rb_x264_encode(e.c, cbytes(f.Y), cbytes(f.U), cbytes(f.V), C.int(f.StrideY), C.int(f.StrideUV), C.int64_t(e.pts), idr)
	e.pts++
	if n < 0 {
		return hal.EncodedFrame{}, fmt.Errorf("media: x264: encode failed (%d)", int(n))
	}
	if n == 0 {
		return hal.EncodedFrame{}, nil
	}
	return hal.EncodedFrame{Data: unsafe.Slice((*byte)(unsafe.Pointer(e.c.data)), int(n)), Keyframe: e.c.out.b_keyframe != 0}, nil
}

// SetBitrate changes the target bitrate (and the VBV buffer with it) from the next frame.
func (e *X264) SetBitrate(bps int) error {
	if e.c == nil {
		return ErrClosedEncoder
	}
	if bps < 1000 {
		return fmt.Errorf("media: x264: bitrate %d bit/s is too low", bps)
	}
	kbps, vbv := rateParams(bps)
	if rc := C.rb_x264_set_bitrate(e.c, kbps, vbv); rc < 0 {
		return fmt.Errorf("media: x264: reconfigure to %d bit/s failed (%d)", bps, int(rc))
	}
	return nil
}

// Close frees the encoder; it is safe to call more than once.
func (e *X264) Close() error {
	if e.c != nil {
		C.rb_x264_close(e.c)
		e.c = nil
	}
	return nil
}
