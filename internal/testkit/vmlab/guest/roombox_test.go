//go:build vmlabguest && linux

package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"roombox/hal/linux/evdev"
	"roombox/hal/linux/evdev/uinput"
)

// daemon is `roombox run` ($ROOMBOX_BIN, with the shared libraries the lab copied beside it)
// on a fresh state dir, serving on 127.0.0.1:8080.
type daemon struct {
	bin, state string
	cmd        *exec.Cmd
	log        bytes.Buffer  // stdout and stderr; read only after exited
	exited     chan struct{} // closed when the process has exited
	waitErr    error         // valid once exited is closed
}

// startDaemon starts roombox run --hal hal; t.Cleanup kills it if still running and logs
// its output if the test failed.
func startDaemon(t *testing.T, hal string) *daemon {
	t.Helper()
	d := &daemon{bin: os.Getenv("ROOMBOX_BIN"), state: t.TempDir(), exited: make(chan struct{})}
	if d.bin == "" {
		t.Fatal("ROOMBOX_BIN is not set (the lab's /init sets it)")
	}
	d.cmd = exec.Command(d.bin, "run", "--hal", hal, "--state-dir", d.state, "--http", "127.0.0.1:8080")
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }() // owned: waited for in the cleanup
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("roombox run --hal %s log:\n%s", hal, d.log.String())
		}
	})
	return d
}

// status is the part of `roombox status` the lab checks.
type status struct {
	State    string `json:"state"`
	Hal      string `json:"hal"`
	Encoder  string `json:"encoder"`
	MicMuted bool   `json:"mic_muted"`
	Video    *struct {
		Width, Height, FPS int
		Modes              []struct{ Width, Height, FPS int }
	} `json:"video"`
}

// status runs `roombox status`, retrying for up to a minute while the daemon starts: under
// TCG a cold start of a 40 MB binary takes seconds.
func (d *daemon) status(t *testing.T) status {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, d.bin, "status", "--state-dir", d.state).Output()
		cancel()
		if err == nil {
			var st status
			if err := json.Unmarshal(out, &st); err != nil || st.State == "" {
				t.Fatalf("roombox status printed %q: %v", out, err)
			}
			return st
		}
		select {
		case <-d.exited:
			t.Fatalf("roombox run exited before answering status: %v", d.waitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("roombox status did not answer within a minute: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects a clean exit; the log is safe to read after it.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
		if d.waitErr != nil {
			t.Errorf("roombox run after SIGTERM: %v, want a clean exit", d.waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("roombox run still running 30 s after SIGTERM")
	}
}

// TestRoomboxSim runs the daemon with the simulated board: `roombox status` and /healthz
// answer and SIGTERM stops it cleanly, which proves the binary and its libraries run in the
// lab's initramfs.
func TestRoomboxSim(t *testing.T) {
	d := startDaemon(t, "sim")
	st := d.status(t)
	t.Logf("roombox status: state %q, hal %q", st.State, st.Hal)
	if st.State != "unprovisioned" || st.Hal != "sim" {
		t.Errorf("status: state %q, hal %q; want unprovisioned (a fresh state dir), sim", st.State, st.Hal)
	}
	resp, err := http.Get("http://127.0.0.1:8080/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %s", resp.Status)
	}
	d.stop(t)
}

// boardPart matches the daemon's log line for one part of the linux board.
var boardPart = regexp.MustCompile(`msg="board part" part=(\S+) state=(\S+)`)

// TestRoomboxLinux runs the daemon with --hal linux on the lab's drivers: it must name the
// board by its DMI model and attach vivid as the camera (with an encoder for it: x264, there
// being no M2M encoder), snd-aloop as ALSA's default mic and speaker, and the input devices; and a KEY_MICMUTE typed on a uinput keyboard must
// mute the mic and a second press unmute it, as a speakerphone's mute key would.
func TestRoomboxLinux(t *testing.T) {
	kb, err := uinput.Create("roombox-vmlab-speakerphone", evdev.KeyMicMute)
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	model, err := os.ReadFile("/sys/class/dmi/id/product_name")
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "linux")
	st := d.status(t)
	t.Logf("roombox status: state %q, hal %q, encoder %q, mic muted %t", st.State, st.Hal, st.Encoder, st.MicMuted)
	// The status names the board by its model: on a PC, the DMI product name qemu gives.
	if want := strings.TrimSpace(string(model)); st.Hal != want || st.Encoder == "" || st.MicMuted {
		t.Errorf("status: hal %q, encoder %q, mic muted %t; want %q, an encoder for the camera, unmuted",
			st.Hal, st.Encoder, st.MicMuted, want)
	}
	for _, want := range []bool{true, false} {
		// A press as a finger makes it: held 100 ms, well past the 20 ms debounce that
		// swallows shorter blips.
		start := time.Now()
		if err := kb.Key(evdev.KeyMicMute, true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if err := kb.Key(evdev.KeyMicMute, false); err != nil {
			t.Fatal(err)
		}
		for st = d.status(t); st.MicMuted != want; st = d.status(t) {
			if time.Since(start) > 20*time.Second {
				t.Fatalf("KEY_MICMUTE pressed: mic muted still %t after 20 s, want %t", st.MicMuted, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("figure: roombox_micmute_key_to_status_%t=%.0f ms", want, float64(time.Since(start).Milliseconds()))
	}

	// The capture changes at run time on the real driver: vivid's webcam input is closed and
	// opened again at one of the sizes it lists.
	if st.Video == nil || !slices.ContainsFunc(st.Video.Modes, func(m struct{ Width, Height, FPS int }) bool { return m.Width == 640 && m.Height == 360 }) {
		t.Fatalf("status video %+v: want vivid's modes, 640x360 among them", st.Video)
	}
	start := time.Now()
	if out, err := exec.Command(d.bin, "video", "--state-dir", d.state, "--size", "640x360", "--fps", "15").CombinedOutput(); err != nil {
		t.Fatalf("roombox video --size 640x360 --fps 15: %v\n%s", err, out)
	}
	for st = d.status(t); st.Video.Width != 640 || st.Video.Height != 360 || st.Video.FPS != 15; st = d.status(t) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("camera at %dx%d@%d 30 s after roombox video, want 640x360@15", st.Video.Width, st.Video.Height, st.Video.FPS)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("figure: roombox_capture_change_to_status=%.0f ms", float64(time.Since(start).Milliseconds()))
	d.stop(t)

	parts := map[string]string{}
	for _, m := range boardPart.FindAllStringSubmatch(d.log.String(), -1) {
		parts[m[1]] = m[2]
	}
	t.Logf("board parts: %v", parts)
	for _, p := range []string{"camera", "mic", "speaker", "input", "buttons"} {
		if parts[p] != "present" {
			t.Errorf("board part %s: %q, want present", p, parts[p])
		}
	}
}
