//go:build linux

package vmlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VM is one boot of qemu-system-x86_64: the pc machine (q35 loads a 50 MB initramfs through
// fw_cfg ~4 s slower under TCG), no display, the serial console on a pipe.
type VM struct {
	Kernel   string   // host path of the kernel image
	Initrd   string   // host path of the initramfs
	Append   []string // kernel arguments after "console=ttyS0 quiet panic=-1"
	MemoryMB int      // 1024 when 0
	// Accel is qemu's -accel: "tcg" when empty. KVM is not the default because on this
	// machine kind /dev/kvm exists but a guest hangs in the firmware (nested virtualisation).
	Accel string
	// Console, if set, gets the serial output as it arrives (a log file, for a boot that
	// hangs).
	Console io.Writer
}

// ErrNoQemu means qemu-system-x86_64 is not installed.
var ErrNoQemu = errors.New("vmlab: no qemu-system-x86_64 (run make deps: qemu-system-x86)")

// Boot runs the VM until it powers off. When ctx ends first, qemu and anything it started are
// killed and the error says so; the Result then holds what the guest printed until then.
func (vm VM) Boot(ctx context.Context) (*Result, error) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, ErrNoQemu
	}
	mem, accel := vm.MemoryMB, vm.Accel
	if mem == 0 {
		mem = 1024
	}
	if accel == "" {
		accel = "tcg"
	}
	cmd := exec.CommandContext(ctx, qemu,
		"-M", "pc", "-accel", accel, "-m", strconv.Itoa(mem), "-smp", "1",
		"-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", vm.Kernel, "-initrd", vm.Initrd,
		"-append", strings.Join(append([]string{"console=ttyS0", "quiet", "panic=-1"}, vm.Append...), " "))
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
