//go:build vmlabguest && linux

package guest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"roombox/control"
	"roombox/hal/linux/alsa"
	"roombox/hal/sim"
	"roombox/internal/testkit/echotest"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/testwait"
	"roombox/localapi"
)

// Echo figures TestRoomboxEcho checks (docs/BENCHMARKS.md has the runs they were set on).
const (
	// echoSeenDBFS: the talker's speech back from the box, louder than this over a second,
	// is its echo (the box's microphone hears nothing but the loop).
	echoSeenDBFS = -55.0
	// echoOffAtLeast: with the canceller off, all that comes back must be this strong
	// relative to the talker, over at least 4 active windows (the loop gives -21 dB: the
	// default volume's -15 dB and the loop's -6 dB, which the box's auto gain lifts; -13.6
	// to -31.4 dB seen). The box's microphone hears nothing but the loop, so without the
	// echo path the box sends silence and this fails. How much of it the fit of the
	// talker's speech explains is a figure, not a check: in the best window 0.2 to 11.8 dB
	// below it, in most 10 to 30 dB (the daemon's xruns move the path within a window), and
	// something unrelated to the speech fits ~16 dB below (10*log10(window samples / taps)),
	// less for a coloured signal: too close to call under load.
	echoOffAtLeast = -35.0
	// echoMeasured is how much talk each setting is measured over (echoMeasuredShort in
	// -test.short, make test); echoConverge is the far end the canceller hears after it is
	// switched on before its measure starts.
	echoMeasured      = 8 * time.Second
	echoMeasuredShort = 4 * time.Second
	echoConverge      = 2 * time.Second
	// echoWindow and echoPost: the measure's window and the fit's reach after the lag,
	// shorter than echotest's defaults (1 s, 20 ms): the loop is a pure delay, but the
	// daemon's xruns move it, which shorter windows follow; and the fit's cost, window
	// times taps, is seconds of the guest's CPU.
	echoWindow = 500 * time.Millisecond
	echoPost   = 10 * time.Millisecond
	// loopPeriods is the echo loop's playback buffer in 10 ms periods: playback starts when
	// it is full and the loop then keeps it full, so the loop delays what it copies by
	// about this much (plus what waits in its capture buffer); loopGainDB is the loop's
	// coupling, as a loudspeaker a little away from the microphone.
	loopPeriods = 4
	loopGainDB  = -6.0
)

// TestRoomboxEcho is issue 12's echo path on the real ALSA devices: `roombox run --hal
// linux` in a room on the guest's livekit-server plays the room through ALSA's default
// speaker (dmix on the loopback's device 0), and a loop here copies what it plays, read
// from the loopback's far side (hw:Loopback,1,0 capture), back into that side's playback,
// which the daemon's microphone (dsnoop on device 0's capture) hears: ~40 ms later
// (loopPeriods) and 6 dB down (loopGainDB). A talker (echotest.JoinTalker) publishes
// espeak-ng speech the host made ($ROOMBOX_LAB_SPEECH: the guest has no espeak-ng), decodes
// the box's Opus and measures its own speech in it by correlation with what it said, as
// test/e2e's TestEchoCancellationEndToEnd does on the simulated room: first with the
// canceller switched off through the LocalAPI (POST /v1/audio), then on in the same run,
// after the canceller has heard 2 s of the talker. The camera is off (x264 would take the
// CPU the audio needs).
//
// What it asserts: with the canceller off the echo is plain (echoOffAtLeast over at least 4
// windows of talk), and with it on the box's audio keeps coming to the end of its measure
// and that measure covers at least 4 windows of talk. What it does not assert: that the
// canceller lowers the echo. It reports that (figures vmlab_echo_*), but under TCG no
// reduction holds from run to run, let alone issue 12's 25 dB: the guest (2 vCPUs) runs
// livekit-server, the daemon and the talker at 95-98 % CPU, the daemon's ALSA mic and
// speaker xrun 56-120 and 15-117 times over the ~15 s recorded (its 85 ms dsnoop and 42 ms
// dmix buffers), each xrun moves the echo path the canceller has to find again, and the
// round trip the talker sees is 0.4-1.3 s and wanders. Over eight runs the echo by
// correlation in the median window fell -0.9 to 28.5 dB with the canceller on, all that
// came back -6.4 to 8.2 dB (docs/BENCHMARKS.md). The 25 dB is asserted on the host
// (test/e2e, the simulated room) and offline (media/apm).
func TestRoomboxEcho(t *testing.T) {
	const room = "echo"
	path := os.Getenv("ROOMBOX_LAB_SPEECH")
	if path == "" {
		t.Fatal("ROOMBOX_LAB_SPEECH is not set (TestLab makes the speech on the host and sets it)")
	}
	says, err := sim.LoadWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	srv := lktest.Start(t, lktest.WithStartTimeout(2*time.Minute))
	d := startDaemon(t, "linux")
	d.status(t)
	d.cli(t, "mute", "--state-dir", d.state, "camera")

	loopIn, loopOut := startEchoLoop(t)
	tk := echotest.JoinTalker(t, srv.URL, lktest.Token(t, room, "talker"), says, "box")
	tok := strings.TrimSpace(d.cli(t, "token", "--api-key", lktest.APIKey, "--api-secret", lktest.APISecret,
		"--room", room, "--identity", "box"))
	d.cli(t, "provision", "--state-dir", d.state, "--url", srv.URL, "--token", tok)
	testwait.For(t, "the device in the room", time.Minute, func() bool { return d.status(t).State == "in-room" })
	testwait.For(t, "the box's audio at the talker", time.Minute, func() bool { return tk.Tracks() > 0 })
	api := localapi.Dial(d.state)
	measured := echoMeasured
	if testing.Short() {
		measured = echoMeasuredShort
	}

	busy0, procs0 := cpuBusy(t), procCPU()
	// Off: the echo comes back, plain. The waits poll every 250 ms and the measures run once
	// both settings are recorded and the daemon has stopped: the talker's bookkeeping and
	// the fits would otherwise take the CPU the daemon needs.
	setEchoCancellation(t, api, false)
	switched := tk.Index(time.Now())
	seen := echoSeen(t, tk, switched)
	t.Logf("echo seen %v after the switch", echotest.Duration(seen-switched).Round(time.Millisecond))
	// What the box sent 100 ms after the switch was surely processed with the canceller off.
	offFrom := max(seen, switched+echotest.Samples(100*time.Millisecond))
	offTo := offFrom + echotest.Samples(measured)
	waitHeard(t, tk, offTo)

	// On: measured from when the canceller has heard 2 s of the talker, a round trip (the
	// lag found with it off) later; recorded up to the longest round trip the measure
	// looks for, so that window is in whatever the lag.
	setEchoCancellation(t, api, true)
	switched = tk.Index(time.Now())
	converged := echotest.TalkAfter(tk.Sent(switched+echotest.Samples(time.Minute)), switched, echoConverge)
	maxLag := echotest.Samples(1500 * time.Millisecond) // echotest.Options' default MaxLag
	waitHeard(t, tk, converged+maxLag+echotest.Samples(measured))
	t.Logf("figure: vmlab_echo_guest_cpu_busy=%.0f %%", 100*cpuBusy(t).since(busy0))
	t.Logf("CPU time over the recording: %s", cpuSince(procs0))
	st, err := api.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: vmlab_echo_xruns=%d mic, %d speaker (the daemon); %d capture, %d playback (the loop)",
		st.MicXruns, st.SpeakerXruns, loopIn.Xruns(), loopOut.Xruns())
	t.Logf("the box's audio: its RTP time against the talker's timeline moved by %v over the run", tk.Placement().Round(time.Millisecond))
	d.stop(t)
	measuring := time.Now()

	opts := echotest.Options{Window: echoWindow, Post: echoPost}
	off := tk.Measure(offFrom, offTo, opts)
	logEcho(t, "off", off)
	if !(off.LevelDB > echoOffAtLeast) || off.Active < 4 {
		t.Fatalf("echo canceller off: %.1f dB heard in %d active windows; want above %.0f dB in at least 4 (the echo must be plain)",
			off.LevelDB, off.Active, echoOffAtLeast)
	}
	onFrom := converged + echotest.Samples(off.Lag)
	onTo := onFrom + echotest.Samples(measured)
	on := tk.Measure(onFrom, onTo, opts)
	logEcho(t, "on", on)
	offMedian, onMedian := medianLevel(off), medianLevel(on)
	t.Logf("figure: vmlab_echo_off=%.1f dB by correlation (median window %.1f dB); all heard %.1f dB (median window %.1f dB)",
		off.EchoDB, off.MedianDB, off.LevelDB, offMedian)
	t.Logf("figure: vmlab_echo_on=%.1f dB by correlation (median window %.1f dB); all heard %.1f dB (median window %.1f dB)",
		on.EchoDB, on.MedianDB, on.LevelDB, onMedian)
	t.Logf("figure: vmlab_echo_cancelled=%.1f dB by correlation (median window %.1f dB); all heard %.1f dB (median window %.1f dB)",
		off.EchoDB-on.EchoDB, off.MedianDB-on.MedianDB, off.LevelDB-on.LevelDB, offMedian-onMedian)
	t.Logf("figure: vmlab_echo_lag=%v", off.Lag.Round(time.Millisecond))
	t.Logf("figure: vmlab_echo_off_best_fit=%.1f dB below all heard", bestFit(off))
	t.Logf("figure: vmlab_echo_measure=%.1f s", time.Since(measuring).Seconds())
	t.Logf("figure: vmlab_echo_test=%.1f s", time.Since(started).Seconds())
	if on.Active < 4 {
		t.Errorf("echo canceller on: %d windows of talk measured, want at least 4", on.Active)
	}
}

// bestFit is how far below all that came back the fit of the talker's speech is in the
// active window where it explains the most, among those where anything came back (+Inf
// with none).
func bestFit(r echotest.Result) float64 {
	best := math.Inf(1)
	for _, w := range r.Windows {
		if w.Active && w.LevelDB > -100 {
			best = min(best, w.LevelDB-w.EchoDB)
		}
	}
	return best
}

// medianLevel is the median of r's active windows' LevelDB: all that came back in a window,
// relative to what was said there.
func medianLevel(r echotest.Result) float64 {
	var v []float64
	for _, w := range r.Windows {
		if w.Active {
			v = append(v, w.LevelDB)
		}
	}
	if len(v) == 0 {
		return math.Inf(-1)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// echoSeen waits until the talker hears its speech back from the box, over a second louder
// than echoSeenDBFS, from index from of its timeline on, and returns where that second starts.
func echoSeen(t *testing.T, tk *echotest.Talker, from int) int {
	t.Helper()
	second := echotest.Samples(time.Second)
	step := second / 10
	seen := from
	testwait.ForEvery(t, "the talker's speech back from the box", time.Minute, 250*time.Millisecond, func() bool {
		end := tk.HeardUntil()
		if seen+second > end {
			return false
		}
		heard := tk.Heard(end)
		for ; seen+second <= end; seen += step {
			var e float64
			for _, v := range heard[seen : seen+second] {
				e += float64(v) * float64(v)
			}
			if 10*math.Log10(max(e/float64(second)/(32768*32768), 1e-30)) > echoSeenDBFS {
				return true
			}
		}
		return false
	})
	return seen
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

// setEchoCancellation switches the daemon's echo canceller through its LocalAPI (POST
// /v1/audio, as any local program would), failing the test unless the answer holds it.
func setEchoCancellation(t *testing.T, api *localapi.Client, on bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := api.SetAudio(ctx, control.AudioPatch{EchoCancellation: &on})
	if err != nil {
		t.Fatalf("POST /v1/audio echo_cancellation=%t: %v", on, err)
	}
	if s.EchoCancellation != on {
		t.Fatalf("POST /v1/audio echo_cancellation=%t: the settings say %t", on, s.EchoCancellation)
	}
	t.Logf("audio settings: %+v", s)
}

// waitHeard waits until the talker has heard the box up to index end of its timeline.
func waitHeard(t *testing.T, tk *echotest.Talker, end int) {
	t.Helper()
	wait := echotest.Duration(end-tk.Index(time.Now())) + time.Minute
	testwait.ForEvery(t, fmt.Sprintf("the box's audio up to %v of the talker's timeline", echotest.Duration(end)), wait,
		250*time.Millisecond, func() bool { return tk.HeardUntil() >= end })
}

// logEcho logs a measure and its windows.
func logEcho(t *testing.T, name string, r echotest.Result) {
	t.Helper()
	var b strings.Builder
	for _, w := range r.Windows {
		mark := " "
		if !w.Active {
			mark = "-"
		}
		fmt.Fprintf(&b, " %s%.1f/%.1f@%v", mark, w.EchoDB, w.LevelDB, w.Lag.Round(time.Millisecond))
	}
	t.Logf("echo canceller %s: echo %.1f dB (median %.1f dB; all heard %.1f dB), lag %v, %d active windows; per second (echo/heard dB@lag):%s",
		name, r.EchoDB, r.MedianDB, r.LevelDB, r.Lag.Round(time.Millisecond), r.Active, b.String())
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
