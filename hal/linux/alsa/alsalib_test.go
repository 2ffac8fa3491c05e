//go:build linux && cgo

package alsa

import (
	"context"
	_ "embed"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"roombox/hal"
	"roombox/hal/sim"
)

// These tests run alsa-lib itself on the PCMs of testdata/asound.conf: its null plugin and
// its file plugin, which writes what is played to $ROOMBOX_ALSA_OUT and captures from
// $ROOMBOX_ALSA_IN. No sound card is needed. The real driver (snd-aloop: blocking, xruns)
// is exercised by CheckLoopback in the VM lab.
//
// The configuration is embedded, so the test binary runs anywhere (the VM lab copies only
// the binary).
func TestMain(m *testing.M) {
	os.Exit(runWithConfig(m))
}

//go:embed testdata/asound.conf
var testConfig []byte

func runWithConfig(m *testing.M) int {
	dir, err := os.MkdirTemp("", "alsa-test")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "asound.conf")
	if err := os.WriteFile(conf, testConfig, 0o600); err != nil {
		panic(err)
	}
	os.Setenv("ALSA_CONFIG_PATH", conf) // read by alsa-lib when it first loads its configuration
	return m.Run()
}

// tone is n samples of a 440 Hz sine at sim.ToneAmplitude (-10 dBFS), from phase 0.
func tone(n int) []int16 {
	step := 2 * math.Pi * 440 / SampleRate
	return samples(n, func(i int) int16 { return int16(math.Round(sim.ToneAmplitude * math.Sin(step*float64(i)))) })
}

func TestNullDeviceNegotiates(t *testing.T) {
	m, err := OpenMic(Config{Device: "roomnull"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sp, err := OpenSpeaker(Config{Device: "roomnull"})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	sp3, err := OpenSpeaker(Config{Device: "roomnull", Periods: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer sp3.Close()
	for _, tc := range []struct {
		got, want Params
	}{
		{m.Params(), Params{Format: S16, Channels: 1, Rate: 48000, PeriodFrames: 480, BufferFrames: 4 * 480}},
		{sp.Params(), Params{Format: S16, Channels: 1, Rate: 48000, PeriodFrames: 480, BufferFrames: 2 * 480}},
		{sp3.Params(), Params{Format: S16, Channels: 1, Rate: 48000, PeriodFrames: 480, BufferFrames: 3 * 480}},
	} {
		if tc.got != tc.want {
			t.Errorf("negotiated %v, want %v", tc.got, tc.want)
		}
	}
	if l := sp.Params().Latency(); l.Milliseconds() != 20 {
		t.Errorf("playback latency %v, want 20ms", l)
	}
}

func TestSpeakerPlaysToneToFile(t *testing.T) {
	for _, tc := range []struct {
		device   string
		channels int
	}{{"roomfile", 1}, {"roomstereo", 2}} {
		t.Run(tc.device, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.raw")
			t.Setenv("ROOMBOX_ALSA_OUT", out)
			sp, err := OpenSpeaker(Config{Device: tc.device})
			if err != nil {
				t.Fatal(err)
			}
			if sp.Params().Channels != tc.channels {
				t.Errorf("negotiated %v, want %d channels", sp.Params(), tc.channels)
			}
			want := tone(SampleRate)
			for p := range SampleRate / PeriodFrames {
				if err := sp.WritePCM(context.Background(), want[p*PeriodFrames:(p+1)*PeriodFrames]); err != nil {
					t.Fatal(err)
				}
			}
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got := unsafe.Slice((*int16)(unsafe.Pointer(&raw[0])), len(raw)/2)
			if len(got) != len(want)*tc.channels {
				t.Fatalf("file holds %d samples, want %d", len(got), len(want)*tc.channels)
			}
			for c := range tc.channels {
				ch := make([]int16, len(want))
				for i := range ch {
					ch[i] = got[i*tc.channels+c]
				}
				if db := sim.ToneDBFS(ch, 440, SampleRate); math.Abs(db+10) > 0.1 {
					t.Errorf("channel %d: 440 Hz at %.2f dBFS, want -10", c, db)
				}
				if !slices.Equal(ch, want) {
					t.Errorf("channel %d differs from the samples written", c)
				}
			}
		})
	}
}

func TestMicCapturesFromFile(t *testing.T) {
	src := tone(SampleRate / 2)
	stereo := make([]int16, 0, 2*len(src))
	for _, v := range src {
		stereo = append(stereo, v, 0) // left only: the mono mix is half the tone, -16 dBFS
	}
	for _, tc := range []struct {
		device string
		file   []int16
		wantDB float64
	}{{"roomfile", src, -10}, {"roomstereo", stereo, -10 - 20*math.Log10(2)}} {
		t.Run(tc.device, func(t *testing.T) {
			in := filepath.Join(t.TempDir(), "in.raw")
			if err := os.WriteFile(in, bytesOf(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("ROOMBOX_ALSA_IN", in)
			m, err := OpenMic(Config{Device: tc.device})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got := make([]int16, len(src))
			for p := range len(got) / PeriodFrames {
				if err := m.ReadPCM(context.Background(), got[p*PeriodFrames:(p+1)*PeriodFrames]); err != nil {
					t.Fatal(err)
				}
			}
			if db := sim.ToneDBFS(got, 440, SampleRate); math.Abs(db-tc.wantDB) > 0.1 {
				t.Errorf("captured 440 Hz at %.2f dBFS, want %.2f", db, tc.wantDB)
			}
			if tc.device == "roomfile" && !slices.Equal(got, src) {
				t.Error("captured samples differ from the file's")
			}
		})
	}
}

func TestDevicesListsConfiguredPCMs(t *testing.T) {
	devs, err := Devices()
	if err != nil {
		t.Fatal(err)
	}
	want := Device{Name: "roomnull", Desc: "roombox test: null", Input: true, Output: true}
	if !slices.Contains(devs, want) {
		t.Errorf("Devices() = %+v, want it to hold %+v", devs, want)
	}
}

func TestOpenUnknownDevice(t *testing.T) {
	_, err := OpenMic(Config{Device: "no-such-pcm"})
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("OpenMic(no-such-pcm) = %v, want ENOENT", err)
	}
}

func TestClosedOrCancelled(t *testing.T) {
	m, err := OpenMic(Config{Device: "roomnull"})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := OpenSpeaker(Config{Device: "roomnull"})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]int16, PeriodFrames)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.ReadPCM(ctx, buf); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadPCM with a cancelled ctx: %v", err)
	}
	if err := sp.WritePCM(ctx, buf); !errors.Is(err, context.Canceled) {
		t.Errorf("WritePCM with a cancelled ctx: %v", err)
	}
	for _, c := range []interface{ Close() error }{m, sp, m} {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
	if err := m.ReadPCM(context.Background(), buf); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("ReadPCM after Close: %v", err)
	}
	if err := sp.WritePCM(context.Background(), buf); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("WritePCM after Close: %v", err)
	}
}

// Steady state allocates nothing per period, with and without format conversion.
func TestNoAllocationsPerPeriod(t *testing.T) {
	ctx := context.Background()
	buf := make([]int16, PeriodFrames)
	for _, device := range []string{"roomnull", "roomstereo"} {
		m, err := OpenMic(Config{Device: device})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		sp, err := OpenSpeaker(Config{Device: device})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		if n := testing.AllocsPerRun(200, func() {
			if err := m.ReadPCM(ctx, buf); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per ReadPCM", device, n)
		}
		if n := testing.AllocsPerRun(200, func() {
			if err := sp.WritePCM(ctx, buf); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per WritePCM", device, n)
		}
	}
}

// CPU per 10 ms period through alsa-lib, on the null device (which never blocks): the
// binding's overhead, not the driver's.
func BenchmarkReadPCM(b *testing.B) {
	for _, device := range []string{"roomnull", "roomstereo"} {
		b.Run(device, func(b *testing.B) {
			m, err := OpenMic(Config{Device: device})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			buf := make([]int16, PeriodFrames)
			b.ReportAllocs()
			for b.Loop() {
				if err := m.ReadPCM(context.Background(), buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWritePCM(b *testing.B) {
	for _, device := range []string{"roomnull", "roomstereo"} {
		b.Run(device, func(b *testing.B) {
			sp, err := OpenSpeaker(Config{Device: device})
			if err != nil {
				b.Fatal(err)
			}
			defer sp.Close()
			buf := tone(PeriodFrames)
			b.ReportAllocs()
			for b.Loop() {
				if err := sp.WritePCM(context.Background(), buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSndAloop checks the real snd-aloop driver: CheckLoopback (a tone through the loop,
// its level and latency, an underrun forced and recovered), then a hot-unplug (the card
// unbound from its driver under an open stream) and the device's return. It needs the
// module and root, so it skips here, where there are no sound cards; the VM lab loads
// snd-aloop and runs this test binary (go test -c ./hal/linux/alsa; alsa.test -test.run
// TestSndAloop -test.v).
func TestSndAloop(t *testing.T) {
	if _, err := os.Stat("/proc/asound/Loopback"); err != nil {
		t.Skip("snd-aloop is not loaded (the VM lab runs this test with it)")
	}
	ctx := context.Background()
	rep, err := CheckLoopback(ctx, "hw:Loopback,0,0", "hw:Loopback,1,0")
	t.Log(rep)
	if err != nil {
		t.Fatal(err)
	}

	// Unplug: unbinding the card disconnects it at once, but the unbind returns only
	// once every open stream is closed (snd_card_free waits), so it runs on its own.
	const driver, card = "/sys/bus/platform/drivers/snd_aloop/", "snd_aloop.0"
	const dev = "hw:Loopback,1" // any free capture subdevice: two streams below
	bare, err := OpenMic(Config{Device: dev})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	m := NewReopeningMic(Config{Device: dev}) // the wall clock: backoff from 250 ms
	defer m.Close()
	buf := make([]int16, PeriodFrames)
	for _, in := range []hal.AudioIn{bare, m} {
		if err := in.ReadPCM(ctx, buf); err != nil {
			t.Fatal(err)
		}
	}
	unbound := make(chan error, 1)
	go func() { unbound <- os.WriteFile(driver+"unbind", []byte(card), 0) }()
	// Reads may still succeed until the disconnect lands; 500 periods are 5 s of audio.
	err = nil
	for range 500 {
		if err = bare.ReadPCM(ctx, buf); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrUnplugged) {
		t.Errorf("ReadPCM on an unbound card: %v, want ErrUnplugged", err)
	}
	bare.Close()

	// The reopening mic reads on; the unbind returns only once it has closed its dead
	// device, and no read succeeds until the card is bound again and reopened.
	rctx, cancel := context.WithCancel(ctx)
	reads := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		rbuf := make([]int16, PeriodFrames)
		for rctx.Err() == nil {
			if err := m.ReadPCM(rctx, rbuf); err == nil {
				select {
				case reads <- struct{}{}:
				default:
				}
			} else if rctx.Err() == nil {
				t.Errorf("ReopeningMic.ReadPCM: %v", err)
				return
			}
		}
	})
	if err := <-unbound; err != nil {
		t.Fatal(err)
	}
	select {
	case <-reads: // a read of the old device, before the unplug
	default:
	}
	if m.Err() == nil {
		t.Error("Err() is nil while the card is unbound")
	}
	t.Logf("Err() while unbound: %v", m.Err())
	if err := os.WriteFile(driver+"bind", []byte(card), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reads:
	case <-time.After(20 * time.Second): // the backoff is at most 5 s
		t.Fatal("no read 20 s after the card was bound again")
	}
	if m.Err() != nil {
		t.Errorf("Err() after reopening = %v", m.Err())
	}
}
