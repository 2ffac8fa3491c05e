// Package lktest runs the real livekit-server (v1.13.5, built by `make livekit` from
// tools/livekit) for tests: one process per Start, on loopback, with free ports, dev keys
// devkey/secret, and its log in the test's temp dir (its tail is printed when the test fails).
//
// The binary is $ROOMBOX_LIVEKIT_SERVER, else <repo root>/bin/livekit-server. A missing binary
// fails the test; it is never skipped.
package lktest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Dev credentials every lktest server accepts.
const (
	APIKey    = "devkey"
	APISecret = "secret"
)

// EnvServer names the environment variable holding the livekit-server binary path.
const EnvServer = "ROOMBOX_LIVEKIT_SERVER"

const (
	defaultStartTimeout = 30 * time.Second
	logTailLines        = 80
	startAttempts       = 3
	stopGrace           = 300 * time.Millisecond
)

// Server is a running (or stopped) livekit-server process. Its ports and config stay the same
// across Kill/Stop and Restart. Methods may be called from any goroutine, but those that fail
// the test (Restart) must be called from the test goroutine.
type Server struct {
	URL       string // ws://127.0.0.1:PORT, for clients and tokens
	HTTPURL   string // http://127.0.0.1:PORT, for the Twirp API and health checks
	APIKey    string
	APISecret string

	Config     *Config // as written to ConfigPath; do not modify
	Dir        string  // temp dir holding the config and log
	ConfigPath string
	LogPath    string

	t            testing.TB
	binary       string
	startTimeout time.Duration

	mu     sync.Mutex
	proc   *process
	starts int
	logOff int64 // log size when the last successfully started process began
}

type process struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd.Wait returned
	err    error         // cmd.Wait's result, valid after done
	logOff int64         // log size when this process started
	ready  time.Time     // when it first answered
}

// Start launches livekit-server and waits until it answers on its HTTP port. It fails the test
// if the binary is missing or the server does not come up; t.Cleanup stops it.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := options{startTimeout: defaultStartTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := findBinary(o.binary)
	if err != nil {
		t.Fatalf("lktest: %v", err)
	}

	dir := t.TempDir()
	s := &Server{
		APIKey:       APIKey,
		APISecret:    APISecret,
		Dir:          dir,
		ConfigPath:   filepath.Join(dir, "livekit.yaml"),
		LogPath:      filepath.Join(dir, "livekit.log"),
		t:            t,
		binary:       bin,
		startTimeout: o.startTimeout,
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("lktest: config %s:\n%s", s.ConfigPath, readFile(s.ConfigPath))
			t.Logf("lktest: last %d lines of %s:\n%s", logTailLines, s.LogPath, s.LogTail(logTailLines))
		}
	})

	for attempt := 1; ; attempt++ {
		cfg, err := newConfig(o.hooks)
		if err != nil {
			t.Fatalf("lktest: %v", err)
		}
		if err := s.setConfig(cfg); err != nil {
			t.Fatalf("lktest: %v", err)
		}
		err = s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			t.Fatalf("lktest: %v\nlast lines of %s:\n%s", err, s.LogPath, s.LogTail(logTailLines))
		}
		t.Logf("lktest: %v; retrying with other ports", err)
	}
}

// Restart starts the server again with the same config and ports, stopping it first if it
// is running. It fails the test if the server does not come up.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err = s.start(); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond) // let the kernel release the old sockets
	}
	if err != nil {
		s.t.Fatalf("lktest: restart: %v\nlast lines of %s:\n%s", err, s.LogPath, s.LogTail(logTailLines))
	}
}

// Kill sends SIGKILL (a crash: no goodbye to clients) and waits for the process to exit.
// It is a no-op if the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop shuts the server down: SIGTERM, a second SIGTERM (forced shutdown, which does not wait
// for participants to leave) after 3 s, SIGKILL after 3 s more. It waits for the process to
// exit and is a no-op if the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	// livekit-server v1.13.5 serves HTTP 100 ms before it marks itself running
	// (service/server.go Start), and a SIGTERM before that is lost; a non-forced shutdown
	// waits for participants to leave. Hence the grace delay and the escalation.
	if d := time.Until(p.ready.Add(stopGrace)); d > 0 {
		select {
		case <-p.done:
			return
		case <-time.After(d):
		}
	}
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGTERM, syscall.SIGKILL} {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
			return
		case <-time.After(3 * time.Second):
		}
	}
	<-p.done
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// PID returns the process id of the running server, or 0.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// LogTail returns the last n lines of the server log (all starts).
func (s *Server) LogTail(n int) string {
	return tail(readFile(s.LogPath), n)
}

var errAddrInUse = errors.New("port already in use")

func (s *Server) setConfig(cfg *Config) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("marshal config: %w", err)
	}
	if err := os.WriteFile(s.ConfigPath, b, 0o600); err != nil {
		return err
	}
	s.Config = cfg
	s.URL = "ws://127.0.0.1:" + strconv.Itoa(cfg.Port)
	s.HTTPURL = "http://127.0.0.1:" + strconv.Itoa(cfg.Port)
	return nil
}

// start launches the process and waits until it is ready; on failure the process is gone.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("already running")
	}
	s.starts++

	logf, err := os.OpenFile(s.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own descriptor
	off, _ := logf.Seek(0, io.SeekEnd)
	fmt.Fprintf(logf, "=== lktest: start #%d: %s --config %s\n", s.starts, s.binary, s.ConfigPath)

	cmd := exec.Command(s.binary, "--config", s.ConfigPath)
	cmd.Dir = s.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.binary, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), logOff: off}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	if err := s.waitReady(p); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		if strings.Contains(readFileFrom(s.LogPath, p.logOff), "address already in use") {
			return fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return err
	}
	p.ready = time.Now()
	s.proc = p
	s.logOff = p.logOff
	return nil
}

// waitReady polls GET / until livekit answers 200 "OK" (its health check, which also waits
// for the first node stats), the process exits, or the start timeout passes.
func (s *Server) waitReady(p *process) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.HTTPURL+"/", nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Equal(bytes.TrimSpace(body), []byte("OK")) {
				return nil
			}
			last = fmt.Sprintf("GET / = %d %q", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("livekit-server exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("livekit-server not ready after %v (last: %s)", s.startTimeout, last)
		case <-tick.C:
		}
	}
}

func newConfig(hooks []func(*Config)) (*Config, error) {
	httpPort, err := freePort("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	udpPort, err := freePort("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := defaultConfig(httpPort, udpPort)
	for _, h := range hooks {
		h(cfg)
	}
	return cfg, nil
}

func freePort(network, addr string) (int, error) {
	if strings.HasPrefix(network, "udp") {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Binary returns the livekit-server binary Start uses without WithBinary:
// $ROOMBOX_LIVEKIT_SERVER, else <repo root>/bin/livekit-server. It fails, saying how to build
// or name one, if that path is not an executable file.
func Binary() (string, error) {
	return findBinary("")
}

// findBinary resolves the livekit-server binary: explicit, $ROOMBOX_LIVEKIT_SERVER, or
// <repo root>/bin/livekit-server.
func findBinary(explicit string) (string, error) {
	if explicit != "" {
		return checkExecutable(explicit, "livekit")
	}
	return RepoBinary(EnvServer, "livekit-server", "livekit")
}

// RepoBinary resolves a tool the Makefile builds into bin/: the path in the environment
// variable env, or bin/name in the repository. The error says which make target builds it.
func RepoBinary(env, name, target string) (string, error) {
	path := os.Getenv(env)
	if path == "" {
		root, err := repoRoot()
		if err != nil {
			return "", fmt.Errorf("%s is not set and %v; run `make %s`", env, err, target)
		}
		path = filepath.Join(root, "bin", name)
	}
	return checkExecutable(path, target)
}

// checkExecutable returns path if it is an executable file.
func checkExecutable(path, target string) (string, error) {
	if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("no executable at %s: run `make %s`", path, target)
	}
	return path, nil
}

// repoRoot walks up from the working directory (a package dir under `go test`) to the
// directory whose go.mod declares module roombox.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
					if fields[1] == "roombox" {
						f.Close()
						return dir, nil
					}
					break
				}
			}
			f.Close()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod declaring module roombox above the working directory")
		}
		dir = parent
	}
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

func readFileFrom(path string, off int64) string {
	s := readFile(path)
	if off > 0 && off <= int64(len(s)) {
		return s[off:]
	}
	return s
}

func tail(s string, n int) string {
	if n <= 0 {
		return ""
	}
	s = strings.TrimRight(s, "\n")
	i := len(s)
	for ; n > 0 && i > 0; n-- {
		i = strings.LastIndexByte(s[:i], '\n')
		if i < 0 {
			return s
		}
	}
	return s[i+1:]
}
