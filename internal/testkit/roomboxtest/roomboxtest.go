// Package roomboxtest runs the real roombox binary in tests: its CLI verbs, its status
// through the LocalAPI, and `roombox run` on the sim board as a daemon the test owns (log
// kept, control page URL read from the log, SIGTERM and a clean exit checked on cleanup).
package roomboxtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"roombox/appliance/store"
	"roombox/control"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// cliTimeout bounds one CLI verb.
	cliTimeout = 20 * time.Second
	// pageTimeout bounds the wait for the control page: its URL in the log, then /healthz.
	pageTimeout = 20 * time.Second
	// stopTimeout is how long the daemon has to exit after SIGTERM.
	stopTimeout = 10 * time.Second
)

// Binary is the binary under test: $ROOMBOX_BIN (the Makefile builds it), else a fresh build
// into the test's temp dir.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ROOMBOX_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("ROOMBOX_BIN=%s: %v (run make build)", p, err)
		}
		return p
	}
	out := filepath.Join(t.TempDir(), "roombox")
	if b, err := exec.Command("go", "build", "-o", out, "roombox/cmd/roombox").CombinedOutput(); err != nil {
		t.Fatalf("building roombox: %v\n%s", err, b)
	}
	return out
}

// CLI runs one roombox verb (20 s at most) and returns its stdout and stderr.
func CLI(bin string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	return cliContext(ctx, bin, args...)
}

func cliContext(ctx context.Context, bin string, args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// MustCLI is CLI failing the test, with both outputs, if the verb fails; it returns stdout.
func MustCLI(t testing.TB, bin string, args ...string) string {
	t.Helper()
	o, e, err := CLI(bin, args...)
	if err != nil {
		t.Fatalf("roombox %s: %v\n%s%s", strings.Join(args, " "), err, o, e)
	}
	return o
}

// DecodeStatus runs `roombox status` for stateDir within ctx and decodes its JSON output
// into v (a control.Status, or a test's own subset of it).
func DecodeStatus(ctx context.Context, bin, stateDir string, v any) error {
	o, e, err := cliContext(ctx, bin, "status", "--state-dir", stateDir)
	if err != nil {
		return fmt.Errorf("roombox status: %w: %s", err, strings.TrimSpace(e))
	}
	if err := json.Unmarshal([]byte(o), v); err != nil {
		return fmt.Errorf("roombox status output %q: %w", o, err)
	}
	return nil
}

// Status asks the daemon through its LocalAPI (`roombox status`, 20 s at most).
func Status(bin, stateDir string) (control.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	var st control.Status
	err := DecodeStatus(ctx, bin, stateDir, &st)
	return st, err
}

// MustStatus is Status failing the test if the daemon does not answer.
func MustStatus(t testing.TB, bin, stateDir string) control.Status {
	t.Helper()
	st, err := Status(bin, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// StatusIs reports whether the daemon answers status and cond holds (false while it is
// still starting).
func StatusIs(bin, stateDir string, cond func(control.Status) bool) bool {
	st, err := Status(bin, stateDir)
	return err == nil && cond(st)
}

// WaitStatus polls the daemon's status until cond holds, failing the test after timeout
// with the last status seen.
func WaitStatus(t testing.TB, bin, stateDir, what string, timeout time.Duration, cond func(control.Status) bool) control.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := Status(bin, stateDir)
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("device status: %s not seen within %v (last: %+v, err %v)", what, timeout, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Daemon is a running `roombox run`, started by Start or StartCmd.
type Daemon struct {
	StateDir string    // its --state-dir
	Started  time.Time // just before the process started

	cmd     *exec.Cmd
	mu      sync.Mutex
	log     bytes.Buffer
	url     string        // the control page's URL, once logged
	urlSeen chan struct{} // closed when url is set
	exited  chan struct{} // closed when the process has exited and err is set
	err     error         // cmd.Wait's result
	stopped bool
}

var pageURLRe = regexp.MustCompile(`msg="control page" url=(\S+)`)

// RunArgs are the arguments of `roombox run` on the sim board for stateDir, with its control
// page on a free loopback port, and extra flags appended.
func RunArgs(stateDir string, extra ...string) []string {
	return append([]string{"run", "--hal", "sim", "--state-dir", stateDir, "--http", "127.0.0.1:0"}, extra...)
}

// Start starts `roombox run` (RunArgs) and returns at once; PageURL waits for the page.
func Start(t testing.TB, bin, stateDir string, extra ...string) *Daemon {
	t.Helper()
	return StartCmd(t, exec.Command(bin, RunArgs(stateDir, extra...)...), stateDir)
}

// StartCmd starts cmd, a `roombox run` for stateDir the caller built (with RunArgs, maybe
// behind a wrapper such as `ip netns exec`), in a process group of its own that is killed
// if the test process dies. It keeps the daemon's log (stderr). The test's cleanup stops the
// daemon (Stop) and, if the test failed, logs the whole log.
func StartCmd(t testing.TB, cmd *exec.Cmd, stateDir string) *Daemon {
	t.Helper()
	d := &Daemon{StateDir: stateDir, cmd: cmd, urlSeen: make(chan struct{}), exited: make(chan struct{})}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	setProcAttr(cmd)
	d.Started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting roombox run: %v", err)
	}
	go func() {
		defer close(d.exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log.WriteString(line + "\n")
			if m := pageURLRe.FindStringSubmatch(line); m != nil && d.url == "" {
				d.url = m[1]
				close(d.urlSeen)
			}
			d.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
		d.err = cmd.Wait() // after stderr's EOF: Wait closes the pipe
	}()
	t.Cleanup(func() {
		d.Stop(t)
		if t.Failed() {
			t.Logf("roombox log (%s):\n%s", stateDir, d.LogText())
		}
	})
	return d
}

// LogText is what the daemon has logged so far.
func (d *Daemon) LogText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// PageURL waits for the daemon to log its control page's URL ("http://127.0.0.1:PORT/") and
// returns it, failing the test if the daemon exits first or does not log it within 20 s.
func (d *Daemon) PageURL(t testing.TB) string {
	t.Helper()
	select {
	case <-d.urlSeen:
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.url
	case <-d.exited:
		t.Fatalf("roombox run exited (%v) before it logged its control page URL:\n%s", d.err, d.LogText())
	case <-time.After(pageTimeout):
		t.Fatalf("roombox run did not log its control page URL within %v", pageTimeout)
	}
	return ""
}

// WaitHealthy waits until the control page answers GET /healthz with 200 and returns its
// URL, failing the test if the daemon exits first or the page does not answer within 20 s.
func (d *Daemon) WaitHealthy(t testing.TB) string {
	t.Helper()
	deadline := time.Now().Add(pageTimeout)
	url := d.PageURL(t)
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for {
		resp, err := client.Get(url + "healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		select {
		case <-d.exited:
			t.Fatalf("roombox run exited before its control page answered:\n%s", d.LogText())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the control page at %s did not answer /healthz within %v (last: %v)", url, pageTimeout, err)
		}
	}
}

// SetupCode is the per-device code in STATE_DIR/setup-code (the page's password before a
// provisioning sets one).
func (d *Daemon) SetupCode(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.StateDir, store.SetupCodeFile))
	if err != nil {
		t.Fatalf("setup code: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// PID is the daemon's process id, e.g. to read its /proc/PID/status.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Exited reports whether the daemon has exited, and how.
func (d *Daemon) Exited() (bool, error) {
	select {
	case <-d.exited:
		return true, d.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and waits: the daemon must exit cleanly within 10 s, else the test
// fails and its process group is killed. Later calls (the cleanup's) do nothing.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.stopped {
		return
	}
	d.stopped = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if d.err != nil {
			t.Errorf("roombox run exited with %v after SIGTERM", d.err)
		}
	case <-time.After(stopTimeout):
		kill(d.cmd)
		<-d.exited
		t.Errorf("roombox run did not stop within %v of SIGTERM", stopTimeout)
	}
}

// StateDir makes a fresh state dir for the daemon (mode 0700) in the test's temp dir.
func StateDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// SocketDir returns a new temporary directory with a short path, removed when the test
// ends: the LocalAPI socket in it fits a unix socket's path limit, which t.TempDir's long
// names (the test's name, nested) can exceed.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
