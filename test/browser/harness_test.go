//go:build linux

// Package browser drives Debian's chromium against the real roombox daemon's control page
// (docs/CONTROL-PAGE.md) and receives the device in a room with the official livekit-client,
// against a real livekit-server. The browser is driven by driver.mjs (playwright-core) under
// node; this package decides every step and asserts what the page shows and what the server
// and the device report. `make test` installs chromium, node and the npm packages.
package browser

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	chromiumPath = "/usr/bin/chromium"
	// driverMaxSeconds bounds the node driver's whole life; it exits by itself after it.
	driverMaxSeconds = 600
	// replySlack is how much longer than a command's own timeout the test waits for its reply.
	replySlack = 10 * time.Second
)

var installHint = "run `make test` (its browser-deps and npm-deps steps install chromium, nodejs, npm and test/browser/node_modules)"

func init() {
	// Orphans of the browser's process group (children of a chromium that was killed) are
	// re-parented to this process instead of init, so the cleanup can reap them and prove
	// that nothing of the browser is left, zombies included.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0)
}

// requireBrowserTools fails the test, naming `make test`, if node, chromium or the npm
// packages are missing.
func requireBrowserTools(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH: %v; %s", err, installHint)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium is missing: %v; %s", err, installHint)
	}
	for _, p := range []string{"node_modules/playwright-core/package.json", "node_modules/livekit-client/dist/livekit-client.umd.js"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("test/browser/%s is missing: %v; %s", p, err, installHint)
		}
	}
	return node
}

// repoRoot is the directory whose go.mod declares module roombox.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module roombox\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod of module roombox above the working directory")
		}
		dir = parent
	}
}

// artifactsDir is $ROOMBOX_ARTIFACTS, else artifacts/browser under the repo root (gitignored).
func artifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ROOMBOX_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "artifacts", "browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// ---- the browser driver (driver.mjs) ----

// reply is one answer of the driver: its common fields, and the whole line for the rest.
type reply struct {
	ID      int      `json:"id"`
	Op      string   `json:"op"`
	OK      bool     `json:"ok"`
	Error   string   `json:"error"`
	Console []string `json:"console"`
	raw     []byte
}

// field decodes one more field of the reply into v.
func (r reply) field(t testing.TB, name string, v any) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Fatalf("driver reply %s: %v", r.raw, err)
	}
	if err := json.Unmarshal(m[name], v); err != nil {
		t.Fatalf("driver reply %s: field %q: %v", r.raw, name, err)
	}
}

// driver is node running driver.mjs, which runs chromium.
type driver struct {
	t          *testing.T
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	lines      chan []byte // stdout lines; closed when node's stdout ends
	done       chan struct{}
	browserPID int // chromium's pid and process group
	version    string
	nextID     int
	stderrMu   sync.Mutex
	stderr     bytes.Buffer
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (d *driver) stderrText() string {
	d.stderrMu.Lock()
	defer d.stderrMu.Unlock()
	return d.stderr.String()
}

// startDriver starts node driver.mjs in its own process group and waits for chromium to be up.
// Cleanup closes the browser (stdin EOF), kills both process groups whatever happened, and
// fails the test if any process of them is left.
func startDriver(t *testing.T) *driver {
	t.Helper()
	node := requireBrowserTools(t)
	d := &driver{t: t, lines: make(chan []byte, 64), done: make(chan struct{})}
	d.cmd = exec.Command(node, "driver.mjs")
	d.cmd.Env = append(os.Environ(), "ROOMBOX_CHROMIUM="+chromiumPath, "ROOMBOX_DRIVER_MAX_SECONDS="+strconv.Itoa(driverMaxSeconds))
	d.cmd.Stderr = lockedWriter{&d.stderrMu, &d.stderr}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting node driver.mjs: %v", err)
	}
	stdoutEOF := make(chan struct{})
	go func() {
		defer close(d.lines)
		defer close(stdoutEOF)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			d.lines <- append([]byte(nil), sc.Bytes()...)
		}
	}()
	waited := make(chan error, 1)
	go func() {
		<-stdoutEOF // Wait closes the pipe: read node's last words first
		err := d.cmd.Wait()
		waited <- err
		close(d.done)
	}()
	t.Cleanup(func() { d.stop(waited) })

	deadline := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				t.Fatalf("driver.mjs exited before chromium was ready:\n%s", d.stderrText())
			}
			var ev struct {
				Event, Error, Version string
				PID                   int
			}
			if json.Unmarshal(line, &ev) != nil {
				t.Fatalf("driver.mjs printed %q", line)
			}
			switch ev.Event {
			case "browser":
				d.browserPID = ev.PID
			case "ready":
				d.version = ev.Version
				t.Logf("chromium %s (pid %d) driven by node driver.mjs (pid %d)", ev.Version, d.browserPID, d.cmd.Process.Pid)
				return d
			case "error":
				t.Fatalf("driver.mjs: %s\n%s", ev.Error, d.stderrText())
			}
		case <-deadline:
			t.Fatalf("chromium not ready within 60s:\n%s", d.stderrText())
		}
	}
}

// stop ends the browser: stdin EOF lets driver.mjs close chromium and exit; whatever
// happened, both process groups then get SIGKILL, and no process may be left in them.
func (d *driver) stop(waited <-chan error) {
	t := d.t
	go func() { // nobody reads replies any more; keep node's stdout flowing
		for range d.lines {
		}
	}()
	_ = d.stdin.Close()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("driver.mjs exited with %v:\n%s", err, d.stderrText())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("driver.mjs did not exit within 20s of stdin closing; killing it")
	}
	groups := []int{d.cmd.Process.Pid}
	if d.browserPID > 0 {
		groups = append(groups, d.browserPID)
	}
	for _, g := range groups {
		_ = syscall.Kill(-g, syscall.SIGKILL) // ESRCH: the group is already gone
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Errorf("driver.mjs's stdout still open 10s after SIGKILL of its process group")
	}
	var left []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		left = reapGroups(groups)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("browser processes (groups %v) left 5s after SIGKILL: %v", groups, left)
	} else {
		t.Logf("browser stopped: no process of groups %v nor any chromium child left", groups)
	}
}

// reapGroups finds what is left of the browser: processes in the given process groups, and
// chromium processes re-parented to this process (the crashpad handlers chromium starts in
// sessions of their own, and orphans of a killed chromium). It kills the live ones, reaps
// the zombies that are this process's children, and returns the ones still there.
func reapGroups(groups []int) []string {
	in := map[int]bool{}
	for _, g := range groups {
		in[g] = true
	}
	me := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	var left []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : i]
		f := strings.Fields(s[i+1:])
		if len(f) < 3 {
			continue
		}
		state := f[0]
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		if !in[pgrp] && (ppid != me || !strings.HasPrefix(comm, "chrom")) {
			continue
		}
		if state != "Z" {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		} else if ppid == me {
			var ws syscall.WaitStatus
			if p, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); p == pid {
				continue
			}
		}
		left = append(left, fmt.Sprintf("%d(%s,%s,ppid %d,pgrp %d)", pid, comm, state, ppid, pgrp))
	}
	return left
}

// try sends one command and returns the driver's reply; it fails the test only if the driver
// does not answer.
func (d *driver) try(op string, args map[string]any) reply {
	t := d.t
	t.Helper()
	d.nextID++
	cmd := map[string]any{"id": d.nextID, "op": op}
	for k, v := range args {
		cmd[k] = v
	}
	timeout := 15 * time.Second
	if ms, ok := args["timeout"].(int); ok {
		timeout = time.Duration(ms) * time.Millisecond
	}
	b, _ := json.Marshal(cmd)
	if _, err := d.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("driver: sending %s: %v\n%s", b, err, d.stderrText())
	}
	deadline := time.After(timeout + replySlack)
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				t.Fatalf("driver.mjs exited while doing %s:\n%s", b, d.stderrText())
			}
			var r reply
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("driver.mjs printed %q: %v", line, err)
			}
			r.raw = line
			if r.ID != d.nextID {
				t.Logf("driver: %s", line) // an event (deadline) or a stale reply
				continue
			}
			return r
		case <-deadline:
			t.Fatalf("driver.mjs did not answer %s within %v", b, timeout+replySlack)
		}
	}
}

// do is try, failing the test if the step failed.
func (d *driver) do(op string, args map[string]any) reply {
	d.t.Helper()
	r := d.try(op, args)
	if !r.OK {
		d.t.Fatalf("browser: %s %v: %s\npage console:\n  %s", op, args, r.Error, strings.Join(r.Console, "\n  "))
	}
	return r
}

// screenshot saves page as NAME.png in the artifacts dir and logs its path.
func (d *driver) screenshot(page, name string) {
	d.t.Helper()
	path := filepath.Join(artifactsDir(d.t), name+".png")
	d.do("screenshot", map[string]any{"page": page, "path": path})
	d.t.Logf("screenshot: %s", path)
}

// diagnose logs a page's console and its recent API calls if the test has failed; defer it.
func (d *driver) diagnose(page string) {
	if !d.t.Failed() {
		return
	}
	r := d.try("diag", map[string]any{"page": page})
	if !r.OK {
		return
	}
	var network []string
	r.field(d.t, "network", &network)
	d.t.Logf("page %s console:\n  %s\npage %s API calls:\n  %s", page, strings.Join(r.Console, "\n  "), page, strings.Join(network, "\n  "))
}

// read reads an element's trimmed text and the named attributes.
func (d *driver) read(page, selector string, attrs ...string) (string, map[string]*string) {
	d.t.Helper()
	r := d.do("read", map[string]any{"page": page, "selector": selector, "attrs": attrs})
	var text string
	var got map[string]*string
	r.field(d.t, "text", &text)
	r.field(d.t, "attrs", &got)
	return text, got
}
