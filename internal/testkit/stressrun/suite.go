package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// killAfter is how long past its -test.timeout a run may take before its process group is
// killed: the binary's own timeout panics first and prints where each test was.
const killAfter = time.Minute

// suite is one package and the -run pattern of its tests under stress.
type suite struct {
	name, pkg, pattern string
	importPath, dir    string // from go list: test2json's -p, and where go test runs the binary
	bin                string // the test binary, built once
}

// buildSuites builds each suite's test binary into dir (go test -c), with the import path
// and directory go list gives.
func buildSuites(ctx context.Context, suites []*suite, dir string) error {
	for i, s := range suites {
		out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.ImportPath}}\t{{.Dir}}", s.pkg).Output()
		if err != nil {
			return fmt.Errorf("go list %s: %w", s.pkg, exitDetail(err))
		}
		var ok bool
		if s.importPath, s.dir, ok = strings.Cut(strings.TrimSpace(string(out)), "\t"); !ok {
			return fmt.Errorf("go list %s: unexpected output %q", s.pkg, out)
		}
		s.bin = filepath.Join(dir, fmt.Sprintf("%d-%s.test", i, filepath.Base(s.dir)))
		fmt.Printf("stressrun: building %s\n", s.importPath)
		cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", s.bin, s.pkg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go test -c %s: %w", s.pkg, err)
		}
		if _, err := os.Stat(s.bin); err != nil {
			return fmt.Errorf("%s has no tests: %w", s.pkg, err)
		}
	}
	return nil
}

// run runs the suite once, keeps its test2json stream in logDir and adds it to t. Failing
// tests are not an error; a run that could not start, was interrupted (parent cancelled) or
// whose stream does not parse is.
func (s *suite) run(parent context.Context, t *tally, timeout time.Duration, logDir string, round int) (runCounts, error) {
	ctx, cancel := context.WithTimeout(parent, timeout+killAfter)
	defer cancel()
	logPath := filepath.Join(logDir, fmt.Sprintf("%s.%d.json", strings.TrimSuffix(filepath.Base(s.bin), ".test"), round))
	out, err := os.Create(logPath)
	if err != nil {
		return runCounts{}, fmt.Errorf("%s: %w", s.name, err)
	}
	defer out.Close()
	cmd := exec.CommandContext(ctx, "go", "tool", "test2json", "-t", "-p", s.importPath, s.bin,
		"-test.v=test2json", "-test.count=1", "-test.run="+s.pattern, "-test.timeout="+timeout.String())
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	setProcAttr(cmd)
	cmd.Cancel = func() error {
		signalGroup(cmd, syscall.SIGKILL)
		return nil
	}
	cmd.WaitDelay = 10 * time.Second
	var exit *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &exit) {
		return runCounts{}, fmt.Errorf("%s: %w", s.name, err)
	}
	if err := parent.Err(); err != nil {
		return runCounts{}, err // interrupted: the run's tests were cut short, not failed
	}
	if _, err := out.Seek(0, 0); err != nil {
		return runCounts{}, fmt.Errorf("%s: %w", s.name, err)
	}
	return t.add(s.name, out)
}

// exitDetail adds a failed command's stderr to its error.
func exitDetail(err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) && len(exit.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(exit.Stderr))
	}
	return err
}
