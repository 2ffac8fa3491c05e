//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

func setProcAttr(*exec.Cmd) {}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) { _ = cmd.Process.Signal(sig) }
