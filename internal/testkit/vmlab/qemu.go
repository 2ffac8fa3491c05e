//go:build linux

package vmlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VM is one boot of qemu: no display, the serial console on a pipe.
type VM struct {
	Arch     string   // "amd64" (when empty) or "arm64": see machines
	Kernel   string   // host path of the kernel image
	Initrd   string   // host path of the initramfs
	Append   []string // kernel arguments after "console=CONSOLE quiet panic=-1"
	MemoryMB int      // the machine's default when 0
	// Accel is qemu's -accel: "tcg" when empty. KVM is not the default because on this
	// machine kind /dev/kvm exists but a guest hangs in the firmware (nested virtualisation).
	Accel string
	// Console, if set, gets the serial output as it arrives (a log file, for a boot that
	// hangs).
	Console io.Writer
	// Forwards are host loopback ports forwarded to guest ports through qemu's user-mode
	// network, on the machine's virtio network card (the guest brings it up: 10.0.2.15/24,
	// and reaches the host's loopback as 10.0.2.2).
	Forwards []Forward
}

// Forward forwards 127.0.0.1:Host on the host to the guest's port Guest, TCP or UDP.
type Forward struct {
	Host, Guest int
	UDP         bool
}

// machine is how qemu runs one architecture.
type machine struct {
	qemu, pkg string   // the program, and the Debian package that has it
	args      []string // machine, CPU and SMP arguments
	memoryMB  int
	console   string // the serial console's device name in the guest
	nic       string // the virtio network device on this machine
}

var machines = map[string]machine{
	// The pc machine: q35 loads a 50 MB initramfs through fw_cfg ~4 s slower under TCG.
	// Two vCPUs (qemu runs them on two host threads, MTTCG): on one, the room checks'
	// livekit-server, daemon and participants left the daemon's speaker silent in up to 40 %
	// of 100 ms windows and the echo check's path unmeasurable (docs/BENCHMARKS.md).
	"amd64": {qemu: "qemu-system-x86_64", pkg: "qemu-system-x86", args: []string{"-M", "pc", "-smp", "2"},
		memoryMB: 1024, console: "ttyS0", nic: "virtio-net-pci"},
	// The virt machine with a Raspberry Pi 4's cores; its virtio devices sit on virtio-mmio.
	"arm64": {qemu: "qemu-system-aarch64", pkg: "qemu-system-arm", args: []string{"-M", "virt", "-cpu", "cortex-a72", "-smp", "2"},
		memoryMB: 512, console: "ttyAMA0", nic: "virtio-net-device"},
}

// ErrNoQemu means the architecture's qemu-system program is not installed.
var ErrNoQemu = errors.New("vmlab: no qemu-system for the VM (run make deps, or make cross-deps for arm64)")

// Boot runs the VM until it powers off. When ctx ends first, qemu and anything it started are
// killed and the error says so; the Result then holds what the guest printed until then.
func (vm VM) Boot(ctx context.Context) (*Result, error) {
	arch := vm.Arch
	if arch == "" {
		arch = "amd64"
	}
	m, ok := machines[arch]
	if !ok {
		return nil, fmt.Errorf("vmlab: no machine for architecture %q", vm.Arch)
	}
	qemu, err := exec.LookPath(m.qemu)
	if err != nil {
		return nil, fmt.Errorf("%w: %s (package %s)", ErrNoQemu, m.qemu, m.pkg)
	}
	mem, accel := vm.MemoryMB, vm.Accel
	if mem == 0 {
		mem = m.memoryMB
	}
	if accel == "" {
		accel = "tcg"
	}
	args := append(slices.Clone(m.args), "-accel", accel, "-m", strconv.Itoa(mem),
		"-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", vm.Kernel, "-initrd", vm.Initrd,
		"-append", strings.Join(append([]string{"console=" + m.console, "quiet", "panic=-1"}, vm.Append...), " "))
	if len(vm.Forwards) > 0 {
		netdev := "user,id=n"
		for _, f := range vm.Forwards {
			proto := "tcp"
			if f.UDP {
				proto = "udp"
			}
			netdev += fmt.Sprintf(",hostfwd=%s:127.0.0.1:%d-:%d", proto, f.Host, f.Guest)
		}
		args = append(args, "-netdev", netdev, "-device", m.nic+",netdev=n")
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	// qemu in its own process group, killed whole: nothing it starts outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("vmlab: qemu: %w", err)
	}

	res := &Result{}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vmlab: qemu: %w", err)
	}
	// Read to EOF, which comes when qemu exits or its process group is killed.
	var serial strings.Builder
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r") + "\n"
		if res.Init == 0 && strings.HasPrefix(line, markInit+" ") {
			res.Init = time.Since(start)
		}
		serial.WriteString(line)
		if vm.Console != nil {
			io.WriteString(vm.Console, line)
		}
	}
	if sc.Err() != nil { // a line over 1 MB: keep qemu from blocking on a full pipe
		io.Copy(io.Discard, out)
	}
	err = cmd.Wait()
	res.Total = time.Since(start)
	res.Serial = serial.String()
	parseSerial(res)
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("vmlab: qemu killed after %v: %w", res.Total.Round(time.Millisecond), ctx.Err())
	case err != nil:
		return res, fmt.Errorf("vmlab: qemu: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return res, nil
}
