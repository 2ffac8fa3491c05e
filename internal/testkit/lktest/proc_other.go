//go:build !linux

package lktest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
