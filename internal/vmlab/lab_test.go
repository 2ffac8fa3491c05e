//go:build linux

package vmlab

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// labModules are the drivers the lab VM loads: vivid with one instance that has only a video
// capture node (node_types bit 0), the ALSA loopback card, uinput, and evdev, which gives
// input devices their /dev/input/event* nodes.
var labModules = []Module{
	{Name: "vivid", Params: []string{"n_devs=1", "node_types=0x1"}},
	{Name: "snd-aloop"},
	{Name: "uinput"},
	{Name: "evdev"},
}

// guestTests are the guest checks TestLab requires to pass (any other guest test runs too and
// must not fail); fullGuestTests run only in the full lab (make lab, ROOMBOX_LAB=full), which
// also lets the others capture longer.
var (
	guestTests = []string{"TestVividCapture", "TestLoopback", "TestLoopbackCarriesAudio", "TestUinput",
		"TestRoomboxSim", "TestV4L2CheckCapture", "TestV4L2CheckReplug", "TestEvdevCheckUinput"}
	fullGuestTests = []string{"TestVividSizes"}
)

// TestLab boots Debian's kernel under qemu with an initramfs holding busybox, the lab's
// modules, the roombox binary ($ROOMBOX_BIN with its shared libraries) and the guest package's
// tests, runs those in one boot against the real drivers, and requires each to pass. It needs
// `make lab-kernel` (the kernel cache), qemu-system-x86_64 and busybox-static (make deps) and
// `make build`; without them it fails saying so.
func TestLab(t *testing.T) {
	started := time.Now()
	full := os.Getenv("ROOMBOX_LAB") == "full"
	k := labKernel(t)
	bin := os.Getenv("ROOMBOX_BIN")
	if bin == "" {
		bin = "../../bin/roombox"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no roombox binary (%v): run make build or set ROOMBOX_BIN", err)
	}

	tests := guestTests
	timeout := 4 * time.Minute
	if full {
		tests = slices.Concat(guestTests, fullGuestTests)
		timeout = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()

	tmp := t.TempDir()
	guestBin := filepath.Join(tmp, "guest.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-tags", "vmlabguest", "-o", guestBin, "./guest")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: nothing to copy beside it
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest tests: %v\n%s", err, out)
	}
	args := []string{"/bin/guest.test", "-test.v", "-test.timeout", (timeout - time.Minute).String()}
	if !full {
		args = append(args, "-test.short", "-test.skip", "^("+strings.Join(fullGuestTests, "|")+")$")
	}

	g := Guest{
		Kernel:  k,
		Busybox: labBusybox(t),
		Modules: labModules,
		Commands: []Command{{Name: "guest", Argv: args,
			Env: []string{"ROOMBOX_BIN=/bin/roombox", "TMPDIR=/tmp"}}},
	}
	ir, err := g.Initramfs()
	if err != nil {
		t.Fatal(err)
	}
	for guest, host := range map[string]string{"/bin/roombox": bin, "/bin/guest.test": guestBin} {
		if err := ir.AddExecutable(guest, host); err != nil {
			t.Fatal(err)
		}
	}
	initrd := filepath.Join(tmp, "initramfs.cpio")
	size, err := ir.WriteFile(initrd)
	if err != nil {
		t.Fatal(err)
	}

	console, err := os.Create(filepath.Join(tmp, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	vm := VM{Kernel: k.Vmlinuz, Initrd: initrd, Accel: os.Getenv("ROOMBOX_LAB_ACCEL"), Console: console}
	res, err := vm.Boot(ctx)
	if res != nil {
		// The whole console (kernel messages too) on failure; the guest's test output in a
		// verbose run (make lab).
		defer func() {
			if t.Failed() {
				t.Logf("serial console:\n%s", res.Serial)
			} else if testing.Verbose() {
				t.Logf("guest tests:\n%s", res.Sections["guest"].Output)
			}
		}()
	}
	if err != nil {
		t.Fatal(err)
	}

	out := res.Sections["guest"].Output
	t.Logf("kernel %s, initramfs %.1f MB, /init after %v (guest uptime %.2f s), VM ran %v, lab %v",
		k.Release, float64(size)/1e6, res.Init.Round(time.Millisecond), res.Uptime,
		res.Total.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	for _, f := range Figures(out) {
		t.Logf("guest figure: %s", f)
	}
	if len(res.NoModule) > 0 {
		t.Errorf("modules that did not load: %v", res.NoModule)
	}
	sec, ok := res.Sections["guest"]
	if !ok {
		t.Fatal("the guest tests never started (no VMLAB-BEGIN guest on the console)")
	}
	results := GoTestResults(out)
	for _, name := range tests {
		if st := results[name]; st != "PASS" {
			if st == "" {
				st = "did not finish"
			}
			t.Errorf("guest %s: %s", name, st)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(results)) {
		if results[name] == "FAIL" && !slices.Contains(tests, name) {
			t.Errorf("guest %s: FAIL", name)
		}
	}
	if sec.Exit != 0 {
		t.Errorf("guest tests exited %d", sec.Exit)
	}
}

// labKernel opens the kernel make lab-kernel unpacked ($ROOMBOX_LAB_KERNEL, else the
// repository's .cache/lab/kernel); without one the test fails naming the target.
func labKernel(t *testing.T) *Kernel {
	t.Helper()
	dir := os.Getenv("ROOMBOX_LAB_KERNEL")
	if dir == "" {
		dir = "../../.cache/lab/kernel"
	}
	k, err := OpenKernel(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func labBusybox(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("no busybox: run make deps (busybox-static)")
	}
	return p
}

// TestBootCancel boots a guest that never powers off and cancels the boot once its command
// has started: Boot must kill qemu (no process left running with its initramfs) and return
// the cancellation and the output so far, the command's section cut off.
func TestBootCancel(t *testing.T) {
	g := Guest{Kernel: labKernel(t), Busybox: labBusybox(t),
		Commands: []Command{{Name: "spin", Argv: []string{"/bin/sh", "-c", "echo spinning; cat /dev/zero"}}}}
	ir, err := g.Initramfs()
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initramfs.cpio")
	if _, err := ir.WriteFile(initrd); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	canceled := false
	watch := lineFunc(func(line string) {
		if line == "spinning\n" {
			canceled = true
			cancel()
		}
	})
	res, err := VM{Kernel: g.Kernel.Vmlinuz, Initrd: initrd, Accel: os.Getenv("ROOMBOX_LAB_ACCEL"), Console: watch}.Boot(ctx)
	if !canceled {
		t.Fatalf("the guest never started spinning: %v\n%s", err, res.Serial)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Boot = %v, want context.Canceled", err)
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), initrd) {
			t.Errorf("a process still runs with the initramfs after Boot returned: %s %q", p, b)
		}
	}
	if s, ok := res.Sections["spin"]; !ok || s.Exit != -1 || s.Output != "spinning\n" {
		t.Errorf("section spin = %+v, %v; want the output so far, cut off (exit -1)", s, ok)
	}
}

// lineFunc is a Console that calls f with each line.
type lineFunc func(line string)

func (f lineFunc) Write(p []byte) (int, error) { f(string(p)); return len(p), nil }
