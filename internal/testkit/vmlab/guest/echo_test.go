//go:build vmlabguest && linux

package guest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"roombox/hal/linux/alsa"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/testwait"
	"roombox/internal/testkit/vmlab"
	"roombox/localapi"
)

// The echo loop: loopPeriods is its playback buffer in 10 ms periods: playback starts when
// it is full and the loop then keeps it full, so the loop delays what it copies by about
// this much (plus what waits in its capture buffer); loopGainDB is its coupling, as a
// loudspeaker a little away from the microphone.
const (
	loopPeriods = 4
	loopGainDB  = -6.0
)

// hostIP is the host's loopback as the guest reaches it on qemu's user-mode network.
const hostIP = "10.0.2.2"

// TestRoomboxEcho is the box's half of issue 12's echo check on the real ALSA devices; the
// host's TestLabEcho (internal/testkit/vmlab) is the far end, and the only one that runs
// it. `roombox run --hal linux`, provisioned into a room on the host's livekit-server
// (reached as 10.0.2.2 through qemu's user-mode network), plays the room through ALSA's
// default speaker (dmix on the loopback's device 0), and a loop here copies
// what it plays, read from the loopback's far side (hw:Loopback,1,0 capture), back into
// that side's playback, which the daemon's microphone (dsnoop on device 0's capture) hears:
// ~40 ms later (loopPeriods) and 6 dB down (loopGainDB). The camera is off (x264 would
// take the CPU the audio needs). The daemon's LocalAPI is relayed to a port the host
// forwards (vmlab.Echo); once the box is in the room this prints vmlab.EchoReady, and the host's talker joins, switches the
// canceller off and on through the LocalAPI and measures. This waits for the talker to
// join and to leave, and reports the guest's CPU and the xruns meanwhile.
func TestRoomboxEcho(t *testing.T) {
	const room = "echo"
	echo, err := vmlab.EchoFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "linux")
	d.status(t)
	d.cli(t, "mute", "--state-dir", d.state, "camera")
	loopIn, loopOut := startEchoLoop(t)
	// snd_pcm_delay through the alsa package (what the daemon's canceller is told): the
	// loop's playback holds what it has queued, at most its buffer.
	testwait.For(t, "the echo loop's playback to report its delay", time.Minute, func() bool { return loopOut.Delay() > 0 })
	if d, buf := loopOut.Delay(), time.Duration(loopOut.Params().BufferFrames)*time.Second/48000; d > buf {
		t.Errorf("the echo loop's playback delay %v is over its buffer, %v", d, buf)
	}
	tok := strings.TrimSpace(d.cli(t, "token", "--api-key", lktest.APIKey, "--api-secret", lktest.APISecret,
		"--room", room, "--identity", "box"))
	d.cli(t, "provision", "--state-dir", d.state, "--url", fmt.Sprintf("ws://%s:%d", hostIP, echo.Signal), "--token", tok)
	api := localapi.Dial(d.state)
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", echo.API))
	if err != nil {
		t.Fatal(err)
	}
	testwait.Go(t, "the LocalAPI relay", 10*time.Second, func(ctx context.Context) error {
		vmlab.Relay(ctx, ln, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", api.Socket())
		})
		return nil
	})
	// in says whether the device is in the room with who ("": anyone), as its LocalAPI
	// answers; ok is false when it did not answer.
	in := func(who string) (in, ok bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := api.Status(ctx)
		return st.State == "in-room" && (who == "" || slices.Contains(st.Participants, who)), err == nil
	}
	testwait.ForEvery(t, "the device in the room", time.Minute, time.Second, func() bool { in, _ := in(""); return in })
	fmt.Println(vmlab.EchoReady)

	testwait.ForEvery(t, "the host's talker in the room", 2*time.Minute, time.Second, func() bool { in, _ := in("talker"); return in })
	busy0, procs0 := cpuBusy(t), procCPU()
	testwait.ForEvery(t, "the host's talker to leave", 10*time.Minute, time.Second, func() bool { in, ok := in("talker"); return ok && !in })
	t.Logf("figure: vmlab_echo_guest_cpu_busy=%.0f %%", 100*cpuBusy(t).since(busy0))
	t.Logf("CPU time while the talker was in the room: %s", cpuSince(procs0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: vmlab_echo_xruns=%d mic, %d speaker (the daemon); %d capture, %d playback (the loop)",
		st.MicXruns, st.SpeakerXruns, loopIn.Xruns(), loopOut.Xruns())
	d.stop(t)
}

// startEchoLoop copies what the daemon plays (the loopback's far side, capture) back into
// what its microphone hears (the far side's playback), loopGainDB down, loopPeriods late,
// until the test ends. It returns the two devices, for their xrun counts.
func startEchoLoop(t *testing.T) (*alsa.Mic, *alsa.Speaker) {
	t.Helper()
	// A 250 ms capture buffer rides out the guest's stalls; the playback buffer is the delay.
	in, err := alsa.OpenMic(alsa.Config{Device: loopFarSide, Periods: 25})
	if err != nil {
		t.Fatal(err)
	}
	out, err := alsa.OpenSpeaker(alsa.Config{Device: loopFarSide, Periods: loopPeriods})
	if err != nil {
		in.Close()
		t.Fatal(err)
	}
	t.Logf("echo loop: %s capture %v, playback %v", loopFarSide, in.Params(), out.Params())
	gain := math.Pow(10, loopGainDB/20)
	testwait.Go(t, "the echo loop", 10*time.Second, func(ctx context.Context) error {
		defer in.Close()
		defer out.Close()
		f := in.Format()
		buf := make([]int16, f.FrameSamples*f.Channels)
		for {
			if err := in.ReadPCM(ctx, buf); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("echo loop: %w", err)
			}
			for i, v := range buf {
				buf[i] = int16(math.Round(float64(v) * gain))
			}
			if err := out.WritePCM(ctx, buf); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("echo loop: %w", err)
			}
		}
	})
	return in, out
}

// cpuTimes is the guest's CPU time, all CPUs: busy and total, in clock ticks.
type cpuTimes struct{ busy, total float64 }

func cpuBusy(t *testing.T) cpuTimes {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var c cpuTimes
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		c.total += x
		if i != 3 && i != 4 { // idle, iowait
			c.busy += x
		}
	}
	return c
}

// since is the busy share of the CPU time from c0 to c.
func (c cpuTimes) since(c0 cpuTimes) float64 { return (c.busy - c0.busy) / max(c.total-c0.total, 1) }

// procCPU is each command's CPU time (user and system), in clock ticks.
func procCPU() map[string]float64 {
	m := map[string]float64{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(s[j+1:])
		u, _ := strconv.ParseFloat(f[11], 64)
		k, _ := strconv.ParseFloat(f[12], 64)
		m[s[i+1:j]] += u + k
	}
	return m
}

// cpuSince lists the commands that used CPU time since procs0 (procCPU), most first.
func cpuSince(procs0 map[string]float64) string {
	type use struct {
		name string
		s    float64
	}
	var uses []use
	for name, ticks := range procCPU() {
		if d := (ticks - procs0[name]) / 100; d >= 0.1 {
			uses = append(uses, use{name, d})
		}
	}
	slices.SortFunc(uses, func(a, b use) int { return cmp.Compare(b.s, a.s) })
	var b strings.Builder
	for i, u := range uses {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.1f s", u.name, u.s)
	}
	return b.String()
}
