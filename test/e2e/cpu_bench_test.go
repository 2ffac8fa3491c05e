package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"roombox/control"
	"roombox/internal/testkit/lkprobetest"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
)

// BenchmarkCPUWatchedOrNot measures what dynacast saves: the daemon's CPU (user and system,
// in % of one core over 5 s) publishing its default camera (720p30 in three layers) and
// microphone with nobody receiving the camera, then with one viewer of the full layer
// (lkprobe asking for HIGH; the layers the server then wants are logged). Run it with
//
//	go test ./test/e2e -run '^$' -bench CPUWatchedOrNot -benchtime 1x
func BenchmarkCPUWatchedOrNot(b *testing.B) {
	srv := lktest.Start(b)
	bin := roomboxtest.Binary(b)
	const window = 5 * time.Second
	for b.Loop() {
		stateDir := roomboxtest.StateDir(b)
		roomboxtest.MustCLI(b, bin, "provision", "--state-dir", stateDir, "--url", srv.URL, "--token", lktest.Token(b, room, deviceIdentity))
		d := roomboxtest.Start(b, bin, stateDir)
		roomboxtest.WaitStatus(b, bin, stateDir, "no layer sent with nobody watching", time.Minute,
			func(st control.Status) bool { return st.Video != nil && st.Video.Sending() == "" })
		idle := cpuOver(b, d.PID(), window)
		probe := lkprobetest.Start(b, srv.URL, lktest.Token(b, room, "viewer"), "-participant", deviceIdentity, "-quality", "HIGH")
		st := roomboxtest.WaitStatus(b, bin, stateDir, "f sent to the viewer", time.Minute,
			func(st control.Status) bool { return strings.Contains(st.Video.Sending(), "f") })
		watched := cpuOver(b, d.PID(), window)
		b.ReportMetric(idle, "%cpu-nobody")
		b.ReportMetric(watched, "%cpu-f-viewer")
		b.Logf("daemon CPU: %.1f %% of a core with nobody watching, %.1f %% with one full-size viewer (layers sent: %s; %d probe lines)",
			idle, watched, st.Video.Sending(), len(probe.Lines()))
		d.Stop(b)
	}
}

// cpuOver is the CPU process pid uses over d, in % of one core.
func cpuOver(b *testing.B, pid int, d time.Duration) float64 {
	b.Helper()
	t0, c0 := time.Now(), cpuTicks(b, pid)
	time.Sleep(d) // a measurement window, not a wait for an event
	return 100 * float64(cpuTicks(b, pid)-c0) / 100 / time.Since(t0).Seconds()
}

// cpuTicks is the user and system time of pid in clock ticks (100 a second).
func cpuTicks(b *testing.B, pid int) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}
