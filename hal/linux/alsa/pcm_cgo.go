//go:build linux && cgo

package alsa

/*
#cgo pkg-config: alsa
#include <alsa/asoundlib.h>
#include <errno.h>

// rb_open opens name non-blocking and negotiates 48 kHz interleaved S16 (else S32), the
// fewest channels the device allows, a period near period frames and a buffer near
// periods of them. sw params: wake per period; capture starts at once, playback once its
// buffer is full. Returns 0 or a negative errno, with *what naming the call that failed.
static int rb_open(snd_pcm_t **out, const char *name, int capture, unsigned int rate,
                   snd_pcm_uframes_t *period, unsigned int periods, int *s32,
                   unsigned int *channels, snd_pcm_uframes_t *buffer, const char **what) {
	snd_pcm_t *pcm;
	snd_pcm_hw_params_t *hw;
	snd_pcm_sw_params_t *sw;
	snd_pcm_format_t fmt = SND_PCM_FORMAT_S16;
	int err, dir = 0;

	*what = "snd_pcm_open";
	err = snd_pcm_open(&pcm, name, capture ? SND_PCM_STREAM_CAPTURE : SND_PCM_STREAM_PLAYBACK,
	                   SND_PCM_NONBLOCK);
	if (err < 0) return err;
	snd_pcm_hw_params_alloca(&hw);
	snd_pcm_sw_params_alloca(&sw);
#define TRY(call) do { *what = #call; if ((err = (call)) < 0) goto fail; } while (0)
	TRY(snd_pcm_hw_params_any(pcm, hw));
	TRY(snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED));
	if (snd_pcm_hw_params_test_format(pcm, hw, fmt) < 0) fmt = SND_PCM_FORMAT_S32;
	*s32 = fmt == SND_PCM_FORMAT_S32;
	TRY(snd_pcm_hw_params_set_format(pcm, hw, fmt));
	*channels = 1;
	TRY(snd_pcm_hw_params_set_channels_near(pcm, hw, channels));
	TRY(snd_pcm_hw_params_set_rate(pcm, hw, rate, 0));
	TRY(snd_pcm_hw_params_set_period_size_near(pcm, hw, period, &dir));
	*buffer = *period * periods;
	TRY(snd_pcm_hw_params_set_buffer_size_near(pcm, hw, buffer));
	TRY(snd_pcm_hw_params(pcm, hw));
	TRY(snd_pcm_hw_params_get_period_size(hw, period, &dir));
	TRY(snd_pcm_hw_params_get_buffer_size(hw, buffer));
	TRY(snd_pcm_sw_params_current(pcm, sw));
	TRY(snd_pcm_sw_params_set_avail_min(pcm, sw, *period));
	TRY(snd_pcm_sw_params_set_start_threshold(pcm, sw, capture ? 1 : *buffer));
	TRY(snd_pcm_sw_params(pcm, sw));
	TRY(snd_pcm_prepare(pcm));
	if (capture) TRY(snd_pcm_start(pcm));
#undef TRY
	*out = pcm;
	return 0;
fail:
	snd_pcm_close(pcm);
	return err;
}

// rb_prepare recovers from an xrun; capture does not start by itself on a read in
// non-blocking mode until asked, so it is started here.
static int rb_prepare(snd_pcm_t *pcm) {
	int err = snd_pcm_prepare(pcm);
	if (err == 0 && snd_pcm_stream(pcm) == SND_PCM_STREAM_CAPTURE) err = snd_pcm_start(pcm);
	return err;
}

// alsa-lib prints its errors to stderr; ours carry the errno, and a reopen loop retrying
// an unplugged device every few seconds would fill the journal with its lines.
static void rb_silent(const char *file, int line, const char *function, int err, const char *fmt, ...) {}
static void rb_quiet(void) { snd_lib_error_set_handler(rb_silent); }

static int rb_disconnected(snd_pcm_t *pcm) {
	return snd_pcm_state(pcm) == SND_PCM_STATE_DISCONNECTED;
}
*/
import "C"

import (
	"fmt"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func init() { C.rb_quiet() }

// alsaPCM is an open snd_pcm_t.
type alsaPCM struct {
	h          *C.snd_pcm_t
	capture    bool
	frameBytes int
}

func openALSA(name string, capture bool, periods int) (pcm, Params, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var (
		h        *C.snd_pcm_t
		period   = C.snd_pcm_uframes_t(PeriodFrames)
		buffer   C.snd_pcm_uframes_t
		s32      C.int
		channels C.uint
		what     *C.char
	)
	capt := C.int(0)
	if capture {
		capt = 1
	}
	if rc := C.rb_open(&h, cname, capt, SampleRate, &period, C.uint(periods), &s32, &channels, &buffer, &what); rc < 0 {
		return nil, Params{}, alsaErr(C.GoString(what), rc)
	}
	par := Params{Format: S16, Channels: int(channels), Rate: SampleRate, PeriodFrames: int(period), BufferFrames: int(buffer)}
	if s32 != 0 {
		par.Format = S32
	}
	return &alsaPCM{h: h, capture: capture, frameBytes: par.frameBytes()}, par, nil
}

func (p *alsaPCM) transfer(b []byte) (int, error) {
	frames := C.snd_pcm_uframes_t(len(b) / p.frameBytes)
	if frames == 0 {
		return 0, nil
	}
	var n C.snd_pcm_sframes_t
	if p.capture {
		n = C.snd_pcm_readi(p.h, unsafe.Pointer(&b[0]), frames)
	} else {
		n = C.snd_pcm_writei(p.h, unsafe.Pointer(&b[0]), frames)
	}
	if n < 0 {
		return 0, p.err("transfer", C.int(n))
	}
	return int(n), nil
}

func (p *alsaPCM) wait(d time.Duration) error {
	if rc := C.snd_pcm_wait(p.h, C.int(d/time.Millisecond)); rc < 0 {
		return p.err("snd_pcm_wait", rc)
	}
	return nil
}

func (p *alsaPCM) prepare() error {
	if rc := C.rb_prepare(p.h); rc < 0 {
		return p.err("snd_pcm_prepare", rc)
	}
	return nil
}

func (p *alsaPCM) resume() error {
	if rc := C.snd_pcm_resume(p.h); rc < 0 {
		return p.err("snd_pcm_resume", rc)
	}
	return nil
}

func (p *alsaPCM) delay() (int, error) {
	var frames C.snd_pcm_sframes_t
	if rc := C.snd_pcm_delay(p.h, &frames); rc < 0 {
		return 0, p.err("snd_pcm_delay", rc)
	}
	return int(frames), nil
}

func (p *alsaPCM) close() error {
	C.snd_pcm_drop(p.h) // playback: discard what is queued rather than play it out
	if rc := C.snd_pcm_close(p.h); rc < 0 {
		return alsaErr("snd_pcm_close", rc)
	}
	return nil
}

// err maps a negative errno to the sentinels the stream logic recovers from. Any other
// error on a PCM whose device is gone is ErrUnplugged too: after a disconnect some calls
// report EBADFD or EIO rather than ENODEV. A wait's EIO (poll reporting an error) counts
// as unplugged even before the state says so: seen on snd-aloop while its card is being
// unbound, and a device that errors its poll is best reopened either way.
func (p *alsaPCM) err(op string, rc C.int) error {
	if -rc == C.EIO && op == "snd_pcm_wait" {
		return ErrUnplugged
	}
	switch -rc {
	case C.EAGAIN:
		return errAgain
	case C.EPIPE:
		return errXrun
	case C.ESTRPIPE:
		return errSuspended
	case C.ENODEV:
		return ErrUnplugged
	}
	if C.rb_disconnected(p.h) != 0 {
		return ErrUnplugged
	}
	if -rc == C.EBADFD {
		return errStopped
	}
	return alsaErr(op, rc)
}

// alsaError is a failed alsa-lib call; it unwraps to the errno (errors.Is(err,
// syscall.ENOENT) for a PCM name that does not exist).
type alsaError struct {
	op   string
	code C.int // negative errno
}

func alsaErr(op string, rc C.int) error { return &alsaError{op: op, code: rc} }

func (e *alsaError) Error() string {
	return fmt.Sprintf("%s: %s", e.op, C.GoString(C.snd_strerror(e.code)))
}

func (e *alsaError) Unwrap() error { return syscall.Errno(-e.code) }

// Devices lists the PCMs the ALSA configuration names (what `aplay -L` and `arecord -L`
// print): the defaults, plugins with hints, and the hw/plughw devices of each card.
func Devices() ([]Device, error) {
	iface, name, desc, ioid := C.CString("pcm"), C.CString("NAME"), C.CString("DESC"), C.CString("IOID")
	for _, s := range []*C.char{iface, name, desc, ioid} {
		defer C.free(unsafe.Pointer(s))
	}
	var hints *unsafe.Pointer // a NULL-terminated array
	if rc := C.snd_device_name_hint(-1, iface, &hints); rc < 0 {
		return nil, fmt.Errorf("alsa: devices: %w", alsaErr("snd_device_name_hint", rc))
	}
	defer C.snd_device_name_free_hint(hints)
	var devs []Device
	for h := hints; *h != nil; h = (*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(h), unsafe.Sizeof(*h))) {
		d := Device{Name: hint(*h, name), Desc: hint(*h, desc)}
		switch hint(*h, ioid) {
		case "Input":
			d.Input = true
		case "Output":
			d.Output = true
		default: // no IOID: both directions
			d.Input, d.Output = true, true
		}
		if d.Name != "" {
			devs = append(devs, d)
		}
	}
	return devs, nil
}

// hint returns one field of a name hint, its lines joined with " - ".
func hint(h unsafe.Pointer, id *C.char) string {
	s := C.snd_device_name_get_hint(h, id)
	if s == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(s))
	return strings.ReplaceAll(C.GoString(s), "\n", " - ")
}
