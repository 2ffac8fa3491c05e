package vmlab

import (
	"fmt"
	"path"
	"strings"
)

// Markers /init prints on the serial console, each on a line of its own, for Boot to parse.
const (
	markInit  = "VMLAB-INIT"  // + uptime: /init has started
	markBegin = "VMLAB-BEGIN" // + command name: its output follows
	markEnd   = "VMLAB-END"   // + command name + exit status
	markNoMod = "VMLAB-INSMOD-FAILED"
)

// busyboxApplets are the applets /init uses, linked to busybox in /bin.
var busyboxApplets = []string{"sh", "mount", "insmod", "ip", "cat", "cut", "env", "poweroff"}

// Guest is what one boot of the lab VM does: load modules, run commands one after the other
// with their output between markers, power off.
type Guest struct {
	Kernel   *Kernel
	Busybox  string    // host path of a static busybox (busybox-static)
	Modules  []Module  // loaded in this order, each after the modules it depends on
	Commands []Command // run in this order; each one's output is a Section of the Result
}

// Module is a kernel module to load, with its parameters ("n_devs=1").
type Module struct {
	Name   string
	Params []string
}

// Command is a program /init runs, with stdout and stderr on the console and no stdin.
type Command struct {
	Name string   // names its Section; one word
	Argv []string // guest paths
	Env  []string // KEY=value, added to /init's environment
}

// Initramfs returns the guest's initramfs: busybox and its applets, the modules, and /init.
// The programs the commands run are the caller's to add (AddExecutable).
func (g *Guest) Initramfs() (*Initramfs, error) {
	names := make([]string, len(g.Modules))
	params := map[string][]string{}
	for i, m := range g.Modules {
		names[i] = m.Name
		params[moduleName(m.Name)] = m.Params
	}
	order, err := g.Kernel.LoadOrder(names...)
	if err != nil {
		return nil, err
	}

	r := NewInitramfs()
	// /init runs before any library could be loaded from the archive: busybox must be static.
	if libs, err := sharedLibraries(g.Busybox); err != nil {
		return nil, err
	} else if len(libs) > 0 {
		return nil, fmt.Errorf("vmlab: busybox %s is not static (install busybox-static)", g.Busybox)
	}
	r.AddFile("/bin/busybox", g.Busybox, 0o755)
	for _, a := range busyboxApplets {
		r.AddSymlink("/bin/"+a, "busybox")
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp"} {
		r.AddDir(d)
	}
	// Users and groups a device image has: alsa-lib's dmix and dsnoop (the default PCM of
	// most cards) give their shared memory to group audio and fail without it.
	r.AddBytes("/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	r.AddBytes("/etc/group", []byte("root:x:0:\naudio:x:29:\n"), 0o644)

	var init strings.Builder
	init.WriteString(`#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "` + markInit + ` $(cut -d' ' -f1 /proc/uptime)"
`)
	for _, host := range order {
		guest := "/lib/modules/" + path.Base(host)
		r.AddFile(guest, host, 0o644)
		name := moduleName(strings.TrimSuffix(path.Base(host), ".ko"))
		fmt.Fprintf(&init, "insmod %s %s || echo %s %s\n", guest, shellQuote(params[name]...), markNoMod, name)
	}
	init.WriteString("ip link set lo up\n")
	for _, c := range g.Commands {
		fmt.Fprintf(&init, "echo %s %s\n", markBegin, c.Name)
		fmt.Fprintf(&init, "env %s %s </dev/null 2>&1\n", shellQuote(c.Env...), shellQuote(c.Argv...))
		fmt.Fprintf(&init, "echo %s %s $?\n", markEnd, c.Name)
	}
	init.WriteString("poweroff -f\n")
	r.AddBytes("/init", []byte(init.String()), 0o755)
	return r, nil
}

// shellQuote quotes each word for sh and joins them with spaces.
func shellQuote(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
