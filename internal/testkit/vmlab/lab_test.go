//go:build linux

package vmlab

import (
	"context"
	"errors"
	"io"
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

// suite is a test binary a lab boot builds, puts in the initramfs and runs in the guest, in
// a console section of its own, with -test.v. The tests run selects (all when empty; the
// full ones only in make lab; none of skip) must not fail, and those in require must be
// seen to pass.
type suite struct {
	name    string   // the section, and /bin/NAME.test
	pkg     string   // built with go test -c
	tags    string   // build tags
	cgo     bool     // built with cgo: its shared libraries go into the initramfs too
	run     string   // -test.run, empty for every test
	skip    []string // tests another boot runs
	require []string // tests that must pass
	full    []string // tests only the full lab runs (make lab, ROOMBOX_LAB=full)
}

// labSuites run in this order: the guest checks, then the hal packages' own tests that need
// the real drivers and skip without them, saying the lab runs them. alsa goes last: its test
// unbinds the loopback card (a hot-unplug) before binding it again.
// The guest checks are built with cgo: the room check decodes Opus and uses alsa-lib.
var labSuites = []suite{
	{name: "guest", pkg: "./guest", tags: "vmlabguest", cgo: true,
		skip: []string{"TestRoomboxEcho"},
		require: []string{"TestVividCapture", "TestLoopback", "TestLoopbackCarriesAudio", "TestUinput",
			"TestRoomboxSim", "TestRoomboxLinux", "TestRoomboxRoom", "TestV4L2CheckCapture", "TestV4L2CheckReplug",
			"TestEvdevCheckUinput"},
		full: []string{"TestVividSizes"}},
	{name: "alsa", pkg: "roombox/hal/linux/alsa", cgo: true, run: "^TestSndAloop$", require: []string{"TestSndAloop"}},
}

// TestLab boots Debian's kernel under qemu with an initramfs holding busybox, the lab's
// modules, the roombox binary ($ROOMBOX_BIN with its shared libraries, and alsa-lib's
// configuration for --hal linux), livekit-server ($ROOMBOX_LIVEKIT_SERVER, for the room
// checks) and the labSuites' test binaries, runs those in one boot against the real
// drivers, and requires them to pass. It needs `make lab-kernel` (the kernel cache),
// qemu-system-x86_64 and busybox-static (make deps), `make build` and `make livekit`;
// without them it fails saying so.
func TestLab(t *testing.T) {
	started := time.Now()
	l := labBoot{suites: labSuites, modules: labModules, full: os.Getenv("ROOMBOX_LAB") == "full"}
	timeout := 5 * time.Minute
	if l.full {
		timeout = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	vm := l.vm(ctx, t, timeout)
	res, err := vm.Boot(ctx)
	l.check(t, res, err)
	t.Logf("lab %v", time.Since(started).Round(time.Millisecond))
}

// labBoot is one boot of the lab VM: what it runs, and how the host reaches it.
type labBoot struct {
	suites   []suite
	modules  []Module
	commands []Command // run before the suites
	env      []string  // added to the suites' environment
	forwards []Forward
	console  io.Writer // also gets the serial console, when set
	full     bool      // make lab: the suites' full tests too

	kernel *Kernel
	size   int64 // the initramfs's, in bytes
}

// vm builds the suites and the initramfs and returns the VM to boot; the suites time out a
// minute before timeout.
func (l *labBoot) vm(ctx context.Context, t *testing.T, timeout time.Duration) VM {
	t.Helper()
	l.kernel = labKernel(t)
	bin := os.Getenv("ROOMBOX_BIN")
	if bin == "" {
		bin = "../../../bin/roombox"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no roombox binary (%v): run make build or set ROOMBOX_BIN", err)
	}
	lk := os.Getenv("ROOMBOX_LIVEKIT_SERVER")
	if lk == "" {
		lk = "../../../bin/livekit-server"
	}
	if _, err := os.Stat(lk); err != nil {
		t.Fatalf("no livekit-server (%v): run make livekit or set ROOMBOX_LIVEKIT_SERVER", err)
	}

	g := Guest{Kernel: l.kernel, Busybox: labBusybox(t), Modules: l.modules, Commands: l.commands}
	tmp := t.TempDir()
	executables := map[string]string{"/bin/roombox": bin, "/bin/livekit-server": lk}
	for _, s := range l.suites {
		host := filepath.Join(tmp, s.name+".test")
		build := exec.CommandContext(ctx, "go", "test", "-c", "-tags", s.tags, "-o", host, s.pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if s.cgo {
			build.Env = append(os.Environ(), "CGO_ENABLED=1")
		}
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building the %s tests: %v\n%s", s.name, err, out)
		}
		executables["/bin/"+s.name+".test"] = host
		args := []string{"/bin/" + s.name + ".test", "-test.v", "-test.timeout", (timeout - time.Minute).String()}
		if s.run != "" {
			args = append(args, "-test.run", s.run)
		}
		skip := s.skip
		if !l.full {
			args = append(args, "-test.short")
			skip = slices.Concat(skip, s.full)
		}
		if len(skip) > 0 {
			args = append(args, "-test.skip", "^("+strings.Join(skip, "|")+")$")
		}
		g.Commands = append(g.Commands, Command{Name: s.name, Argv: args,
			Env: append([]string{"ROOMBOX_BIN=/bin/roombox", "ROOMBOX_LIVEKIT_SERVER=/bin/livekit-server", "TMPDIR=/tmp"}, l.env...)})
	}
	ir, err := g.Initramfs()
	if err != nil {
		t.Fatal(err)
	}
	for guest, host := range executables {
		if err := ir.AddExecutable(guest, host); err != nil {
			t.Fatal(err)
		}
	}
	// alsa-lib's configuration, for roombox's ALSA "default" device; the alsa package's
	// tests embed their own.
	if err := ir.AddTree("/usr/share/alsa", "/usr/share/alsa"); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(tmp, "initramfs.cpio")
	if l.size, err = ir.WriteFile(initrd); err != nil {
		t.Fatal(err)
	}
	console, err := os.Create(filepath.Join(tmp, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { console.Close() })
	var w io.Writer = console
	if l.console != nil {
		w = io.MultiWriter(console, l.console)
	}
	return VM{Kernel: l.kernel.Vmlinuz, Initrd: initrd, Accel: os.Getenv("ROOMBOX_LAB_ACCEL"), Console: w, Forwards: l.forwards}
}

// check fails t unless the boot ended well, every module loaded and every suite's required
// tests passed and none failed; it logs the suites' figures, and their output in a verbose
// run (or the whole console when t failed).
func (l *labBoot) check(t *testing.T, res *Result, err error) {
	t.Helper()
	if res != nil {
		defer func() {
			if t.Failed() {
				t.Logf("serial console:\n%s", res.Serial)
				return
			}
			for _, s := range l.suites {
				if testing.Verbose() {
					t.Logf("%s tests:\n%s", s.name, res.Sections[s.name].Output)
				}
			}
		}()
	}
	if err != nil {
		t.Error(err) // not Fatal: check may run deferred, after a Fatal
		return
	}
	t.Logf("kernel %s, initramfs %.1f MB, /init after %v (guest uptime %.2f s), VM ran %v",
		l.kernel.Release, float64(l.size)/1e6, res.Init.Round(time.Millisecond), res.Uptime,
		res.Total.Round(time.Millisecond))
	if len(res.NoModule) > 0 {
		t.Errorf("modules that did not load: %v", res.NoModule)
	}
	for _, c := range l.commands {
		if s := res.Sections[c.Name]; s.Exit != 0 {
			t.Errorf("%s exited %d: %s", c.Name, s.Exit, s.Output)
		}
	}
	for _, s := range l.suites {
		sec, ok := res.Sections[s.name]
		if !ok {
			t.Errorf("the %s tests never started (no VMLAB-BEGIN %s on the console)", s.name, s.name)
			continue
		}
		for _, f := range Figures(sec.Output) {
			t.Logf("%s figure: %s", s.name, f)
		}
		results := GoTestResults(sec.Output)
		require := s.require
		if l.full {
			require = slices.Concat(s.require, s.full)
		}
		for _, name := range require {
			if st := results[name]; st != "PASS" {
				if st == "" {
					st = "did not finish"
				}
				t.Errorf("%s %s: %s", s.name, name, st)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(results)) {
			if results[name] == "FAIL" && !slices.Contains(require, name) {
				t.Errorf("%s %s: FAIL", s.name, name)
			}
		}
		if sec.Exit != 0 {
			t.Errorf("%s tests exited %d", s.name, sec.Exit)
		}
	}
}

// labKernel opens the kernel make lab-kernel unpacked ($ROOMBOX_LAB_KERNEL, else the
// repository's .cache/lab/kernel); without one the test fails naming the target.
func labKernel(t *testing.T) *Kernel {
	t.Helper()
	dir := os.Getenv("ROOMBOX_LAB_KERNEL")
	if dir == "" {
		dir = "../../../.cache/lab/kernel"
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
