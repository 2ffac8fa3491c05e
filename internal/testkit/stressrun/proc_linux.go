package main

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts cmd in a process group of its own, so the terminal's Ctrl-C reaches
// stressrun alone (which then stops it in order), and kills it should stressrun die.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup signals cmd's whole process group: a test binary's servers and daemons, or
// stress-ng's workers.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) { _ = syscall.Kill(-cmd.Process.Pid, sig) }
