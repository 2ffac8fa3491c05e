//go:build vmlabguest && linux

package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestRoomboxSim runs the real roombox binary ($ROOMBOX_BIN, with the shared libraries the lab
// copied beside it) as a daemon with the simulated board, checks `roombox status` and
// /healthz answer, and that SIGTERM stops it cleanly. It proves the binary runs in the lab's
// initramfs; the daemon runs with --hal linux here once that board exists.
func TestRoomboxSim(t *testing.T) {
	bin := os.Getenv("ROOMBOX_BIN")
	if bin == "" {
		t.Fatal("ROOMBOX_BIN is not set (the lab's /init sets it)")
	}
	state := t.TempDir()
	var log bytes.Buffer
	d := exec.Command(bin, "run", "--hal", "sim", "--state-dir", state, "--http", "127.0.0.1:8080")
	d.Stdout, d.Stderr = &log, &log
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error                                 // valid once exited is closed
	go func() { waitErr = d.Wait(); close(exited) }() // owned: waited for below on every path
	defer func() {
		select {
		case <-exited:
		default:
			d.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("roombox run log:\n%s", log.String())
		}
	}()

	// Under TCG a cold start of a 40 MB binary takes seconds: poll status for up to a minute.
	var st struct {
		State string `json:"state"`
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, bin, "status", "--state-dir", state).Output()
		cancel()
		if err == nil {
			if err := json.Unmarshal(out, &st); err != nil || st.State == "" {
				t.Fatalf("roombox status printed %q: %v", out, err)
			}
			t.Logf("roombox status: state %q", st.State)
			break
		}
		select {
		case <-exited:
			t.Fatalf("roombox run exited before answering status: %v", waitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("roombox status did not answer within a minute: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if st.State != "unprovisioned" {
		t.Errorf("status state %q, want unprovisioned (a fresh state dir)", st.State)
	}
	resp, err := http.Get("http://127.0.0.1:8080/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %s", resp.Status)
	}

	if err := d.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("roombox run after SIGTERM: %v, want a clean exit", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Error("roombox run still running 30 s after SIGTERM")
	}
}
