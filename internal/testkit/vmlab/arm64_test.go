//go:build linux

package vmlab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestArm64Healthz boots Debian's arm64 kernel on qemu's virt machine (TCG, cortex-a72) with
// an initramfs holding the arm64 roombox (make cross) and its arm64 libraries, runs
// `roombox run --hal sim` listening on the guest's 8080, and GETs /healthz through a host
// port forwarded by qemu's user-mode network: the cross-built binary starts and serves on a
// real arm64 kernel. It needs make lab-kernel-arm64 (kernel, virtio modules, busybox:arm64)
// and make cross; without them it fails saying so.
func TestArm64Healthz(t *testing.T) {
	dir := os.Getenv("ROOMBOX_LAB_KERNEL_ARM64")
	if dir == "" {
		dir = "../../../.cache/lab/kernel-arm64"
	}
	k, err := OpenKernel(dir)
	if err != nil {
		t.Fatalf("%v (make lab-kernel-arm64)", err)
	}
	bin := arm64Roombox(t)
	g := Guest{Kernel: k, Busybox: filepath.Join(dir, "bin", "busybox"),
		// virtio-mmio is the virt machine's transport for the network card.
		Modules: []Module{{Name: "virtio_mmio"}, {Name: "virtio_net"}},
		Commands: []Command{
			// qemu's user-mode network: the guest is 10.0.2.15/24.
			{Name: "net", Argv: []string{"/bin/sh", "-c", "ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up"}},
			{Name: "roombox", Argv: []string{"/bin/roombox", "run", "--hal", "sim", "--state-dir", "/tmp/state", "--http", "0.0.0.0:8080"}},
		}}
	ir, err := g.Initramfs()
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.AddExecutable("/bin/roombox", bin); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initramfs.cpio")
	size, err := ir.WriteFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	type boot struct {
		res *Result
		err error
	}
	done := make(chan boot, 1)
	start := time.Now()
	go func() {
		res, err := VM{Arch: "arm64", Kernel: k.Vmlinuz, Initrd: initrd, Accel: os.Getenv("ROOMBOX_LAB_ACCEL"),
			Forwards: []Forward{{Host: port, Guest: 8080}}}.Boot(ctx)
		done <- boot{res, err}
	}()

	// Until the daemon listens, qemu accepts the host's connection and closes it: poll.
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	client := &http.Client{Timeout: 5 * time.Second}
	var first time.Duration
	for first == 0 {
		select {
		case b := <-done:
			t.Fatalf("the VM stopped before /healthz answered: %v\n%s", b.err, b.res.Serial)
		case <-ctx.Done():
			cancel()
			b := <-done
			t.Fatalf("no /healthz answer in %v\n%s", time.Since(start).Round(time.Second), b.res.Serial)
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := healthz(client, url); err == nil {
			first = time.Since(start)
		}
	}
	// One more request once it is up: its latency through slirp and TCG.
	t0 := time.Now()
	status, err := healthz(client, url)
	latency := time.Since(t0)
	cancel()
	b := <-done
	if err != nil {
		t.Fatalf("second /healthz: %v", err)
	}
	if status != "ok" {
		t.Errorf("/healthz status %q, want ok", status)
	}
	if len(b.res.NoModule) > 0 {
		t.Errorf("modules that did not load: %v", b.res.NoModule)
	}
	if s := b.res.Sections["net"]; s.Exit != 0 {
		t.Errorf("bringing eth0 up exited %d: %s", s.Exit, s.Output)
	}
	t.Logf("kernel %s, initramfs %.1f MB, /init after %v (guest uptime %.2f s), first /healthz after %v, then one in %v",
		k.Release, float64(size)/1e6, b.res.Init.Round(time.Millisecond), b.res.Uptime,
		first.Round(time.Millisecond), latency.Round(time.Millisecond))
}

// healthz GETs url and returns the "status" field of its JSON body.
func healthz(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	var h struct{ Status string }
	if err := json.Unmarshal(body, &h); err != nil {
		return "", err
	}
	return h.Status, nil
}

// freePort returns a loopback TCP port nothing listens on now (qemu binds it next).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestForeignLibraries checks the libraries found for the arm64 roombox against what the
// arm64 loader itself loads, run under qemu-user in its trace mode (ldd's mechanism).
func TestForeignLibraries(t *testing.T) {
	bin := arm64Roombox(t)
	libs, err := sharedLibraries(bin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// No -L: the multiarch loader at its own path (see DESIGN on -L hanging).
	cmd := exec.CommandContext(ctx, "qemu-aarch64-static", "-E", "LD_TRACE_LOADED_OBJECTS=1", "/lib/ld-linux-aarch64.so.1", bin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the arm64 loader's trace: %v", err)
	}
	var want []string
	for line := range strings.Lines(string(out)) {
		if m := lddLine.FindStringSubmatch(strings.TrimRight(line, "\n")); m != nil {
			want = append(want, filepath.Base(m[1]))
		}
	}
	got := map[string]bool{}
	for _, l := range libs {
		got[filepath.Base(l)] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("sharedLibraries misses %s; found %v, the loader loads %v", w, libs, want)
		}
	}
	if len(want) < 3 || len(got) != len(want) {
		t.Errorf("sharedLibraries = %v, the loader loads %v", libs, want)
	}
}

// arm64Roombox is the cross-built roombox ($ROOMBOX_BIN_ARM64, else make cross's).
func arm64Roombox(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("ROOMBOX_BIN_ARM64")
	if bin == "" {
		bin = "../../../bin/roombox-linux-arm64"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no arm64 roombox (%v): run make cross or set ROOMBOX_BIN_ARM64", err)
	}
	return bin
}
