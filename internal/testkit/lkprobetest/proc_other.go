//go:build !linux

package lkprobetest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
