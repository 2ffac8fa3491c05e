package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"roombox/internal/testkit/ffmpegtest"
	"syscall"
	"testing"
	"time"

	"roombox/hal"
	"roombox/hal/sim"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// simFrames renders n consecutive frames of the simulated camera at w x h.
func simFrames(tb testing.TB, w, h, n int) []*hal.Frame {
	tb.Helper()
	b, err := sim.New(sim.Config{Width: w, Height: h, Clock: sim.NewInstantClock(t0)})
	if err != nil {
		tb.Fatal(err)
	}
	frames := make([]*hal.Frame, n)
	for i := range frames {
		frames[i] = &hal.Frame{}
		if err := b.Camera.ReadFrame(context.Background(), frames[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return frames
}

func newX264(tb testing.TB, cfg X264Config) *X264 {
	tb.Helper()
	e, err := NewX264(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}

// nalUnits splits an Annex-B access unit into NAL units (without start codes).
func nalUnits(au []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+2 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 {
			if start >= 0 {
				nals = append(nals, bytes.TrimRight(au[start:i], "\x00"))
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(au) {
		nals = append(nals, au[start:])
	}
	return nals
}

func nalTypes(au []byte) []int {
	var types []int
	for _, n := range nalUnits(au) {
		types = append(types, int(n[0]&0x1f))
	}
	return types
}

func indexOf(types []int, t int) int {
	for i, v := range types {
		if v == t {
			return i
		}
	}
	return -1
}

func TestX264Keyframes(t *testing.T) {
	frames := simFrames(t, 640, 360, 70)
	for _, threads := range []int{1, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			testX264Keyframes(t, frames, threads)
		})
	}
}

func testX264Keyframes(t *testing.T, frames []*hal.Frame, threads int) {
	e := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: 640, Height: 360, FPS: 30, Bitrate: 500_000, KeyInterval: 30}, Threads: threads})
	var keyAt []int
	for i, f := range frames {
		ef, err := e.Encode(f, i == 45)
		if err != nil {
			t.Fatal(err)
		}
		types := nalTypes(ef.Data)
		isIDR := indexOf(types, 5) >= 0
		if isIDR != ef.Keyframe {
			t.Fatalf("frame %d: Keyframe=%v but NAL types %v", i, ef.Keyframe, types)
		}
		if isIDR {
			keyAt = append(keyAt, i)
			sps, pps, idr := indexOf(types, 7), indexOf(types, 8), indexOf(types, 5)
			if sps < 0 || pps < 0 || sps > pps || pps > idr {
				t.Fatalf("frame %d: IDR without SPS, PPS before it: NAL types %v", i, types)
			}
			spsNAL := nalUnits(ef.Data)[sps]
			profile, constraints, level := spsNAL[1], spsNAL[2], spsNAL[3]
			if profile != 66 || constraints&0x40 == 0 || level != 30 {
				t.Fatalf("SPS profile_idc %d constraint flags %#x level_idc %d, want 66, set1 (0x40), 30 (640x360@30)", profile, constraints, level)
			}
		} else if indexOf(types, 1) < 0 {
			t.Fatalf("frame %d: no slice in NAL types %v", i, types)
		}
	}
	// IDR at 0, every KeyInterval frames after, and the forced one at 45 (which restarts
	// the interval).
	if fmt.Sprint(keyAt) != "[0 30 45]" {
		t.Fatalf("IDRs at frames %v, want [0 30 45]", keyAt)
	}
}

// The SPS's level follows the picture size and rate (H264Level), and the size is the
// configured one, as an independent decoder reads it.
func TestX264Level(t *testing.T) {
	for _, c := range []struct{ w, h, fps, level int }{{320, 180, 30, 13}, {640, 360, 30, 30}, {1280, 720, 30, 31}, {1920, 1080, 30, 40}, {1280, 720, 60, 32}} {
		t.Run(fmt.Sprintf("%dx%d@%d", c.w, c.h, c.fps), func(t *testing.T) {
			e := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: c.w, Height: c.h, FPS: c.fps}})
			var f hal.Frame
			f.Ensure(c.w, c.h)
			ef, err := e.Encode(&f, true)
			if err != nil {
				t.Fatal(err)
			}
			sps := spsOf(t, ef.Data)
			if sps.Level != c.level || sps.Width != c.w || sps.Height != c.h {
				t.Fatalf("SPS says %+v, want %dx%d level %d", sps, c.w, c.h, c.level)
			}
		})
	}
}

func TestX264SetBitrate(t *testing.T) {
	frames := simFrames(t, 640, 360, 240)
	e := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: 640, Height: 360, Bitrate: 200_000, KeyInterval: 1000}})
	mean := func(fs []*hal.Frame) int {
		total := 0
		for i, f := range fs {
			ef, err := e.Encode(f, false)
			if err != nil {
				t.Fatal(err)
			}
			if i >= len(fs)/2 { // let the rate control settle
				total += len(ef.Data)
			}
		}
		return total / (len(fs) - len(fs)/2)
	}
	low := mean(frames[:120])
	if err := e.SetBitrate(1_500_000); err != nil {
		t.Fatal(err)
	}
	high := mean(frames[120:])
	t.Logf("mean P-frame: %d bytes at 200 kbit/s, %d bytes at 1.5 Mbit/s", low, high)
	if high < 2*low {
		t.Fatalf("raising the bitrate 7.5x grew frames from %d to only %d bytes", low, high)
	}
	if err := e.SetBitrate(10); err == nil {
		t.Fatal("bitrate of 10 bit/s accepted")
	}
}

func TestX264Errors(t *testing.T) {
	for _, cfg := range []X264Config{{EncoderConfig: hal.EncoderConfig{Width: 641, Height: 360}}, {EncoderConfig: hal.EncoderConfig{Width: 0, Height: 360}}, {EncoderConfig: hal.EncoderConfig{Width: 640, Height: 360, Bitrate: 10}}, {EncoderConfig: hal.EncoderConfig{Width: 640, Height: 360}, Preset: "warp"}} {
		if e, err := NewX264(cfg); err == nil {
			_ = e.Close()
			t.Errorf("config %+v accepted", cfg)
		}
	}
	e := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: 640, Height: 360}})
	f := simFrames(t, 320, 180, 1)[0]
	if _, err := e.Encode(f, false); err == nil {
		t.Fatal("frame of the wrong size accepted")
	}
	var short hal.Frame
	short.Ensure(640, 360)
	short.V = short.V[:10]
	if _, err := e.Encode(&short, false); err == nil {
		t.Fatal("frame with a short plane accepted")
	}
	_ = e.Close()
	if _, err := e.Encode(f, false); !errors.Is(err, ErrClosedEncoder) {
		t.Fatalf("encode after close: %v", err)
	}
}

func TestX264EncodeAllocs(t *testing.T) {
	frames := simFrames(t, 640, 360, 10)
	e := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: 640, Height: 360}})
	for _, f := range frames {
		if _, err := e.Encode(f, true); err != nil { // grow the output buffer once
			t.Fatal(err)
		}
	}
	i := 0
	if n := testing.AllocsPerRun(50, func() {
		if _, err := e.Encode(frames[i%len(frames)], i%25 == 0); err != nil {
			t.Fatal(err)
		}
		i++
	}); n != 0 {
		t.Fatalf("Encode allocates %v times per frame", n)
	}
}

// ffmpegGray decodes an Annex-B stream to 8-bit luma frames with ffmpeg.
func ffmpegGray(t *testing.T, stream []byte, w, h int) [][]byte {
	t.Helper()
	frames, err := ffmpegtest.DecodeGray(stream, w, h)
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

// The stamp survives real compression: encode the simulated camera at a low bitrate,
// decode with ffmpeg, and read back every frame's sequence number and capture time.
func TestStampSurvivesH264(t *testing.T) {
	for _, c := range []struct{ w, h, bps int }{{640, 360, 300_000}, {1280, 720, 600_000}, {320, 180, 150_000}} {
		t.Run(fmt.Sprintf("%dx%d@%dk", c.w, c.h, c.bps/1000), func(t *testing.T) {
			frames := simFrames(t, c.w, c.h, 90)
			e := newX264(t, X264Config{EncoderConfig: hal.EncoderConfig{Width: c.w, Height: c.h, Bitrate: c.bps}})
			var stream []byte
			for _, f := range frames {
				ef, err := e.Encode(f, false)
				if err != nil {
					t.Fatal(err)
				}
				stream = append(stream, ef.Data...)
			}
			t.Logf("%d frames, %d bytes: %.0f kbit/s", len(frames), len(stream), float64(len(stream))*8*30/float64(len(frames))/1000)
			decoded := ffmpegGray(t, stream, c.w, c.h)
			if len(decoded) != len(frames) {
				t.Fatalf("ffmpeg decoded %d frames of %d", len(decoded), len(frames))
			}
			for i, y := range decoded {
				s, err := sim.DecodeStamp(y, c.w, c.w, c.h)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if s.Seq != frames[i].Seq || !s.Captured.Equal(frames[i].Captured) {
					t.Fatalf("frame %d: stamp %+v, want seq %d at %v", i, s, frames[i].Seq, frames[i].Captured)
				}
				if i > 0 && s.Seq <= frames[i-1].Seq {
					t.Fatalf("frame %d: seq %d does not increase", i, s.Seq)
				}
			}
		})
	}
}

// cpuTime is the process's user+system CPU time, so benchmarks report the CPU an
// encoder's threads burn, not just the wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchmarkX264(b *testing.B, w, h, bps int) {
	frames := simFrames(b, w, h, 30)
	for _, preset := range []string{"ultrafast", "superfast"} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", preset, threads), func(b *testing.B) {
				e := newX264(b, X264Config{EncoderConfig: hal.EncoderConfig{Width: w, Height: h, Bitrate: bps}, Preset: preset, Threads: threads})
				for _, f := range frames {
					if _, err := e.Encode(f, false); err != nil {
						b.Fatal(err)
					}
				}
				var size int
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuTime()
				for i := range b.N {
					ef, err := e.Encode(frames[i%len(frames)], false)
					if err != nil {
						b.Fatal(err)
					}
					size += len(ef.Data)
				}
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/frame")
				b.ReportMetric(float64(size)/float64(b.N), "B/frame")
			})
		}
	}
}

func BenchmarkX264Encode720p(b *testing.B) { benchmarkX264(b, 1280, 720, 1_500_000) }
func BenchmarkX264Encode360p(b *testing.B) { benchmarkX264(b, 640, 360, 500_000) }

// spsOf is what ffprobe reads from the SPS of an access unit (or a stream starting with one).
func spsOf(t *testing.T, au []byte) ffmpegtest.Stream {
	t.Helper()
	s, err := ffmpegtest.Probe(au)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
