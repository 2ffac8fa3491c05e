//go:build linux

// Package netlab builds impaired networks for tests out of Linux network namespaces.
//
// New creates two namespaces, one for the device ("rbx-dev-PID-RAND") and one for the server
// side ("rbx-srv-PID-RAND"), joined by a veth pair named rbx0 in both, with DeviceIP
// 10.231.N.1/24 and ServerIP 10.231.N.2/24 (N random per lab). Nothing is routed anywhere
// else: there is no default route and no link to the host's namespace, so traffic between the
// two stays on the veth. t.Cleanup removes both namespaces (which removes the veth), and New
// first sweeps namespaces left behind by test processes that no longer exist.
//
// Impairments act on a side's egress on rbx0 (Lab.Device, Lab.Server): Loss (nftables
// `numgen random mod 100 < N drop` at the netdev egress hook, UDP only, silent to the sender
// like loss on a wire), Rate (tc tbf), Block (drop UDP except to some ports, in the output
// hook) and Clear. The kernel here has no netem, so delay comes from StartTURN /
// StartDelayTURN: a pion/turn relay in the server namespace whose relay sockets hold every
// packet for a set duration.
//
// Processes run in a namespace with Lab.Command (`ip netns exec`). Go code in the test process
// creates sockets there with Lab.Do, Lab.ListenPacket, Lab.Listen and Lab.DialContext: a socket
// belongs to the namespace of the thread that created it and stays there, whichever goroutine
// uses it later. Libraries that create their own sockets in goroutines of their own (pion's
// ICE agent) cannot be moved that way: run them as processes (the roombox binary in DeviceNS,
// livekit-server in ServerNS via StartLiveKit).
//
// The package needs Linux, root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2 (ip, tc) and nftables
// (nft); without them New fails the test with what is missing.
package netlab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Link is the name of the veth end in both namespaces.
const Link = "rbx0"

const (
	netnsDir   = "/run/netns"
	cmdTimeout = 10 * time.Second
)

// Lab is a pair of namespaces joined by a veth. Its methods that fail the test (New, the Side
// impairments, StartTURN) must be called from the test goroutine; Do, ListenPacket, Listen,
// DialContext and Command may be called from any goroutine.
type Lab struct {
	DeviceNS string // e.g. rbx-dev-1234-5f3a9c
	ServerNS string // e.g. rbx-srv-1234-5f3a9c
	DeviceIP string // 10.231.N.1
	ServerIP string // 10.231.N.2

	Device *Side // impairments on the device's egress
	Server *Side // impairments on the server side's egress

	t testing.TB
}

// New creates the two namespaces and the veth between them; t.Cleanup deletes them (any
// process still running in them is killed first).
func New(t testing.TB) *Lab {
	t.Helper()
	if err := checkTools(); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	sweepStale(t)

	n := 1 + rand.IntN(254)
	id := fmt.Sprintf("%d-%06x", os.Getpid(), rand.Uint32()&0xffffff)
	l := &Lab{
		DeviceNS: "rbx-dev-" + id,
		ServerNS: "rbx-srv-" + id,
		DeviceIP: fmt.Sprintf("10.231.%d.1", n),
		ServerIP: fmt.Sprintf("10.231.%d.2", n),
		t:        t,
	}
	l.Device = &Side{lab: l, NS: l.DeviceNS, IP: l.DeviceIP}
	l.Server = &Side{lab: l, NS: l.ServerNS, IP: l.ServerIP}

	t.Cleanup(func() {
		for _, ns := range []string{l.DeviceNS, l.ServerNS} {
			if err := removeNS(ns); err != nil {
				t.Errorf("netlab: %v", err)
			}
		}
	})

	steps := [][]string{
		{"ip", "netns", "add", l.DeviceNS},
		{"ip", "netns", "add", l.ServerNS},
		// Created directly inside the namespaces: nothing appears in the host's namespace, and
		// the fixed name cannot clash with another lab's.
		{"ip", "link", "add", Link, "netns", l.DeviceNS, "type", "veth", "peer", "name", Link, "netns", l.ServerNS},
		{"ip", "-n", l.DeviceNS, "addr", "add", l.DeviceIP + "/24", "dev", Link},
		{"ip", "-n", l.ServerNS, "addr", "add", l.ServerIP + "/24", "dev", Link},
		{"ip", "-n", l.DeviceNS, "link", "set", "lo", "up"},
		{"ip", "-n", l.ServerNS, "link", "set", "lo", "up"},
		{"ip", "-n", l.DeviceNS, "link", "set", Link, "up"},
		{"ip", "-n", l.ServerNS, "link", "set", Link, "up"},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			t.Fatalf("netlab: %v", err)
		}
	}
	// The link is usable once both ends are up (no DAD on IPv4); wait for carrier, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := output("ip", "-n", l.DeviceNS, "-o", "link", "show", Link)
		if err == nil && strings.Contains(out, "LOWER_UP") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("netlab: %s in %s has no carrier: %s %v", Link, l.DeviceNS, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return l
}

// Command runs name with args inside namespace ns (`ip netns exec ns name args...`). The
// caller starts and waits for it; like any exec.Cmd it is not killed when the test ends
// unless the caller does so (processes still in the namespace at cleanup are killed).
func (l *Lab) Command(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// CommandContext is Command with exec.CommandContext.
func (l *Lab) CommandContext(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Do runs fn on an OS thread that has joined namespace ns and returns its error. Sockets fn
// creates belong to ns for their whole life. Goroutines fn starts do not run in ns (only the
// calling thread is moved, and the runtime never clones new threads from it).
//
// The thread returns to its namespace before it is unlocked. It is not simply discarded: a
// thread that exits sends Pdeathsig to every child process it forked earlier (lktest sets
// Pdeathsig=SIGKILL on livekit-server), and any thread may have forked one. If the way back
// fails, the thread stays locked and is discarded after all.
func (l *Lab) Do(ns string, fn func() error) error { return Do(ns, fn) }

// Do is Lab.Do for any named namespace (a name under /run/netns).
func Do(ns string, fn func() error) error {
	target, err := os.Open(filepath.Join(netnsDir, ns))
	if err != nil {
		return fmt.Errorf("netlab: namespace %s: %w", ns, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: own namespace: %w", err)
			return
		}
		defer home.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: setns %s: %w", ns, err)
			return
		}
		defer func() {
			if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			} // else: still locked, so the runtime ends the thread with this goroutine
		}()
		errc <- fn()
	}()
	return <-errc
}

// ListenPacket is net.ListenPacket inside namespace ns.
func (l *Lab) ListenPacket(ns, network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := Do(ns, func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// Listen is net.Listen inside namespace ns.
func (l *Lab) Listen(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := Do(ns, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// DialContext returns a dial function (for http.Transport.DialContext, websocket.Dialer's
// NetDialContext, ...) whose connections are made from namespace ns.
func (l *Lab) DialContext(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := Do(ns, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

func checkTools() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
	}
	var missing []string
	for _, tool := range []string{"ip", "tc", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: install the Debian packages iproute2 and nftables (make deps)", strings.Join(missing, ", "))
	}
	return nil
}

var staleName = regexp.MustCompile(`^rbx-(?:dev|srv)-(\d+)-[0-9a-f]+$`)

// sweepStale deletes namespaces of earlier labs whose test process is gone (killed by a test
// timeout, which skips t.Cleanup). Labs of live processes, including parallel ones, are left.
func sweepStale(t testing.TB) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		m := staleName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, 0); pid == os.Getpid() || !errors.Is(err, syscall.ESRCH) {
			continue // alive (or not ours to judge)
		}
		if err := removeNS(e.Name()); err != nil {
			t.Logf("netlab: removing stale namespace: %v", err)
		} else {
			t.Logf("netlab: removed stale namespace %s", e.Name())
		}
	}
}

// removeNS kills what still runs in ns, deletes its veth end (which removes the pair at once,
// even if a leaked socket keeps the namespace alive) and deletes the namespace.
func removeNS(ns string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); err != nil {
		return nil
	}
	if out, err := output("ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = run("ip", "-n", ns, "link", "del", Link) // gone already if the peer's ns went first
	if err := run("ip", "netns", "del", ns); err != nil {
		return err
	}
	return nil
}

func run(name string, args ...string) error {
	_, err := output(name, args...)
	return err
}

func output(name string, args ...string) (string, error) {
	return outputStdin("", name, args...)
}

func outputStdin(stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
