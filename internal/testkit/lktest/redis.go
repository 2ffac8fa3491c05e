package lktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

// EnvRedisServer names the environment variable that may hold the redis-server binary path
// (default: redis-server on $PATH, else /usr/bin/redis-server from Debian's redis-server
// package, which `make deps` installs).
const EnvRedisServer = "ROOMBOX_REDIS_SERVER"

// Redis is a redis-server process a test started on a free loopback port, with persistence
// off (no snapshots, no append-only file) and its log in the test's temp dir. A redis-server
// that the distribution's init system may have started on 6379 is never used.
type Redis struct {
	Addr    string // 127.0.0.1:PORT
	Dir     string // its working dir (nothing is saved there)
	LogPath string

	t      testing.TB
	binary string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returned
}

// StartRedis starts redis-server and waits until it answers PING. It fails the test if the
// binary is missing or the server does not come up; t.Cleanup stops it.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := findRedis()
	if err != nil {
		t.Fatalf("lktest: %v", err)
	}
	dir := t.TempDir()
	r := &Redis{Dir: dir, LogPath: filepath.Join(dir, "redis.log"), t: t, binary: bin}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("lktest: last %d lines of %s:\n%s", logTailLines, r.LogPath, tail(readFile(r.LogPath), logTailLines))
		}
	})
	for attempt := 1; ; attempt++ {
		port, err := freePort("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("lktest: %v", err)
		}
		err = r.start(port)
		if err == nil {
			return r
		}
		if !errors.Is(err, errAddrInUse) || attempt == startAttempts {
			t.Fatalf("lktest: redis-server: %v\nlast lines of %s:\n%s", err, r.LogPath, tail(readFile(r.LogPath), logTailLines))
		}
		t.Logf("lktest: redis-server: %v; retrying with another port", err)
	}
}

func findRedis() (string, error) {
	if p := os.Getenv(EnvRedisServer); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const debian = "/usr/bin/redis-server"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", fmt.Errorf("redis-server not found on PATH or at %s: run `make deps` (installs Debian's redis-server) or set %s", debian, EnvRedisServer)
}

func (r *Redis) start(port int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(r.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	off, _ := logf.Seek(0, io.SeekEnd)

	r.Addr = "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(r.binary,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.Dir,
		"--daemonize", "no",
		"--loglevel", "notice",
	)
	cmd.Dir = r.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.binary, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), defaultStartTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		res, err := r.Do(ctx, "PING")
		if err == nil && res == "PONG" {
			r.cmd, r.done = cmd, done
			return nil
		}
		last = err
		select {
		case <-done:
			if strings.Contains(readFileFrom(r.LogPath, off), "Address already in use") {
				return fmt.Errorf("%w: redis-server exited: %v", errAddrInUse, waitErr)
			}
			return fmt.Errorf("redis-server exited before it was ready: %v", waitErr)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server not ready after %v (last: %v)", defaultStartTimeout, last)
		case <-tick.C:
		}
	}
}

// Stop terminates redis-server (SIGTERM, then SIGKILL after 3 s) and waits for it. It is a no-op
// if it is not running.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(3 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd, r.done = nil, nil
}

// RedisError is an error reply from redis.
type RedisError string

func (e RedisError) Error() string { return "redis: " + string(e) }

// Do runs one command on a fresh connection and returns its reply: string (simple and bulk
// strings), int64, []any, or nil (a null reply); an error reply is a RedisError. Without a
// deadline in ctx the call is bounded by 5 s.
func (r *Redis) Do(ctx context.Context, args ...string) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return nil, fmt.Errorf("lktest: redis %s: %w", r.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil, fmt.Errorf("lktest: redis %s: %w", r.Addr, err)
	}
	res, err := readReply(bufio.NewReader(conn))
	if err != nil {
		var re RedisError
		if errors.As(err, &re) {
			return nil, err
		}
		return nil, fmt.Errorf("lktest: redis %s %s: %w", r.Addr, args[0], err)
	}
	return res, nil
}

// HGetAll returns the hash at key (empty if there is none).
func (r *Redis) HGetAll(ctx context.Context, key string) (map[string]string, error) {
	res, err := r.Do(ctx, "HGETALL", key)
	if err != nil {
		return nil, err
	}
	arr, ok := res.([]any)
	if !ok || len(arr)%2 != 0 {
		return nil, fmt.Errorf("lktest: redis HGETALL %s: unexpected reply %T", key, res)
	}
	m := make(map[string]string, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		k, _ := arr[i].(string)
		v, _ := arr[i+1].(string)
		m[k] = v
	}
	return m, nil
}

// HGet returns one field of the hash at key, and whether it exists.
func (r *Redis) HGet(ctx context.Context, key, field string) (string, bool, error) {
	res, err := r.Do(ctx, "HGET", key, field)
	if err != nil || res == nil {
		return "", false, err
	}
	s, ok := res.(string)
	if !ok {
		return "", false, fmt.Errorf("lktest: redis HGET %s %s: unexpected reply %T", key, field, res)
	}
	return s, true, nil
}

// readReply parses one RESP2 reply.
func readReply(br *bufio.Reader) (any, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, RedisError(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], err = readReply(br); err != nil {
				return nil, err
			}
		}
		return arr, nil
	default:
		return nil, fmt.Errorf("unexpected reply %q", line)
	}
}
