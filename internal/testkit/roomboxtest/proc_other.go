//go:build !linux

package roomboxtest

import "os/exec"

func setProcAttr(*exec.Cmd) {}

func kill(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
