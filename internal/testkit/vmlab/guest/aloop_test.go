//go:build vmlabguest && linux

package guest

import (
	"fmt"
	"math"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The parts of the ALSA PCM UAPI (sound/asound.h) this check uses.
const (
	accessRWInterleaved = 3
	formatS16LE         = 2

	paramAccess        = 0 // masks
	paramFormat        = 1
	paramChannels      = 10 // intervals, from paramFirstInterval
	paramRate          = 11
	paramPeriodSize    = 13
	paramPeriods       = 15
	paramBufferSize    = 17
	paramFirstInterval = 8

	pcmHwParams     = 0x11 // _IOWR('A', 0x11, struct snd_pcm_hw_params)
	pcmPrepare      = 0x40 // _IO('A', 0x40)
	pcmStart        = 0x42
	pcmDrop         = 0x43
	pcmWriteIFrames = 0x50 // _IOW('A', 0x50, struct snd_xferi)
	pcmReadIFrames  = 0x51 // _IOR('A', 0x51, struct snd_xferi)
)

type sndInterval struct{ Min, Max, Flags uint32 }

type sndPCMHwParams struct {
	Flags                                        uint32
	Masks                                        [3][8]uint32 // access, format, subformat: 256-bit masks
	_                                            [5][8]uint32
	Intervals                                    [12]sndInterval
	_                                            [9]sndInterval
	Rmask, Cmask, Info, Msbits, RateNum, RateDen uint32
	FifoSize                                     uintptr // snd_pcm_uframes_t
	_                                            [64]byte
}

type sndXferi struct {
	Result int            // snd_pcm_sframes_t
	Buf    unsafe.Pointer // the samples
	Frames uintptr        // snd_pcm_uframes_t
}

// pcmOpen opens a PCM node and configures it for 48 kHz mono S16_LE interleaved in 20 ms
// periods, 125 of them (a 2.5 s buffer, more than TestLoopbackCarriesAudio moves: its
// playback is queued whole and its recording fits, so a guest under TCG that a busy host
// stops for a while cannot underrun or overrun them), then prepares it. t.Cleanup closes it.
func pcmOpen(t *testing.T, node string) int {
	t.Helper()
	fd, err := unix.Open(node, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// Start from "anything" as alsa-lib's snd_pcm_hw_params_any does, then pin what we want;
	// the kernel refines the rest and chooses.
	var p sndPCMHwParams
	for i := range p.Masks {
		for j := range p.Masks[i] {
			p.Masks[i][j] = ^uint32(0)
		}
	}
	for i := range p.Intervals {
		p.Intervals[i] = sndInterval{Max: ^uint32(0)}
	}
	p.Rmask, p.Info = ^uint32(0), ^uint32(0)
	p.Masks[paramAccess] = [8]uint32{1 << accessRWInterleaved}
	p.Masks[paramFormat] = [8]uint32{1 << formatS16LE}
	for param, v := range map[int]uint32{paramChannels: 1, paramRate: 48000, paramPeriodSize: 960, paramPeriods: 125} {
		p.Intervals[param-paramFirstInterval] = sndInterval{Min: v, Max: v}
	}
	if err := ioctlPtr(fd, iocRead|iocWrite, 'A', pcmHwParams, &p); err != nil {
		t.Fatalf("%s: HW_PARAMS 48 kHz mono S16_LE, 125 periods of 960 frames: %v", node, err)
	}
	t.Logf("%s: rate %d, period %d frames, buffer %d frames", node, p.Intervals[paramRate-paramFirstInterval].Min,
		p.Intervals[paramPeriodSize-paramFirstInterval].Min, p.Intervals[paramBufferSize-paramFirstInterval].Min)
	if err := ioctlInt(fd, ioc(iocNone, 'A', pcmPrepare, 0), 0); err != nil {
		t.Fatalf("%s: PREPARE: %v", node, err)
	}
	return fd
}

// pcmTransfer reads or writes all of buf (blocking), one READI/WRITEI call per period.
func pcmTransfer(fd int, nr uintptr, buf []int16) error {
	dir := uintptr(iocRead)
	if nr == pcmWriteIFrames {
		dir = iocWrite
	}
	for len(buf) > 0 {
		n := min(len(buf), 960)
		x := sndXferi{Buf: unsafe.Pointer(&buf[0]), Frames: uintptr(n)}
		if err := ioctlPtr(fd, dir, 'A', nr, &x); err != nil {
			return err
		}
		buf = buf[x.Result:]
	}
	return nil
}

// TestLoopbackCarriesAudio plays a second of a 1 kHz tone into the loopback card's device 0
// and records device 1's capture side meanwhile: snd-aloop must deliver the samples
// unchanged, after some silence, in order, none lost (the path room audio takes to a
// speaker, and a microphone's capture takes from one).
func TestLoopbackCarriesAudio(t *testing.T) {
	card := loopbackCard(t)
	play := pcmOpen(t, fmt.Sprintf("/dev/snd/pcmC%dD0p", card))
	capt := pcmOpen(t, fmt.Sprintf("/dev/snd/pcmC%dD1c", card))

	tone := make([]int16, 48000)
	for i := range tone {
		tone[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i)/48000+0.5)) // never 0 at i=0
	}
	recorded := make([]int16, 2*48000)
	if err := ioctlInt(capt, ioc(iocNone, 'A', pcmStart, 0), 0); err != nil {
		t.Fatalf("capture START: %v", err)
	}
	captured := make(chan error, 1)
	go func() { captured <- pcmTransfer(capt, pcmReadIFrames, recorded) }() // waited for below
	start := time.Now()
	playErr := pcmTransfer(play, pcmWriteIFrames, tone)
	if playErr == nil {
		// Silence behind the tone keeps the stream running until the tone has gone through.
		playErr = pcmTransfer(play, pcmWriteIFrames, make([]int16, 24000))
	}
	if err := <-captured; err != nil {
		t.Fatalf("capture: %v", err)
	}
	if playErr != nil {
		t.Fatalf("playback: %v", playErr)
	}
	ioctlInt(play, ioc(iocNone, 'A', pcmDrop, 0), 0)
	t.Logf("figure: aloop_capture_2s_wall=%.0f ms", float64(time.Since(start).Milliseconds()))

	first := -1
	for i, v := range recorded {
		if v != 0 {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatal("captured only silence")
	}
	if first+len(tone) > len(recorded) {
		t.Fatalf("the tone began %d frames into the recording, too late to hold all of it", first)
	}
	for i, want := range tone {
		if got := recorded[first+i]; got != want {
			t.Fatalf("sample %d of the tone (%d into the recording) = %d, want %d", i, first+i, got, want)
		}
	}
	t.Logf("figure: aloop_tone_offset=%.1f ms", float64(first)/48)
}
