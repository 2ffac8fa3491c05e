// Command stressrun runs test suites again and again, each run its own test process,
// optionally under a CPU load it owns, and prints how often each test passed: make
// test-stress runs the timing-sensitive suites with stress-ng loading both cores.
//
//	stressrun [-n 10] [-load "stress-ng --cpu 2"] [-timeout 20m] [-logs DIR] PKG=PATTERN...
//
// Each PKG=PATTERN is a suite, `go test -run PATTERN PKG`. Its test binary is built once,
// before the load starts, so building takes neither the load's time nor the runs'. Each
// run is the binary under `go tool test2json` in the package's directory, which is what
// `go test -json -count=1` runs: its own process, bounded by -timeout (and killed with its
// process group a minute later should it hang even so). Runs go round the suites in turn,
// n rounds. The tally is per top-level test; a skipped test counts as skipped, never as
// passed. The load is restarted whenever it exits (on a shared machine another user's
// `pkill stress-ng` ends it) and stopped after the runs. stressrun exits non-zero if any
// test failed any run, if a run found no test, or if the load could not be kept running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "stressrun:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 10, "rounds: runs of each suite")
	loadCmd := flag.String("load", "", `command loading the CPU during the runs, e.g. "stress-ng --cpu 2"; stopped after them`)
	timeout := flag.Duration("timeout", 20*time.Minute, "-test.timeout of one run")
	logs := flag.String("logs", "", "directory for each run's test2json stream (default: a new one in $TMPDIR)")
	flag.Parse()
	if *n < 1 {
		return fmt.Errorf("-n %d: want at least 1 run", *n)
	}
	suites, err := parseSuites(flag.Args())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()

	logDir, err := makeLogDir(*logs, start)
	if err != nil {
		return err
	}
	binDir, err := os.MkdirTemp("", "stressrun-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	if err := buildSuites(ctx, suites, binDir); err != nil {
		return err
	}
	var ld *load
	if *loadCmd != "" {
		if ld, err = startLoad(strings.Fields(*loadCmd)); err != nil {
			return err
		}
		defer ld.stop()
		fmt.Printf("stressrun: under load %q (pid %d)\n", ld.name, ld.pid)
	}

	t := newTally()
	rounds, runErr := runRounds(ctx, t, suites, *n, *timeout, logDir, ld)
	if ld != nil {
		ld.stop()
	}
	names := make([]string, len(suites))
	for i, s := range suites {
		names[i] = s.name
	}
	fmt.Println()
	t.print(os.Stdout, names)
	fmt.Printf("\nstressrun: %d of %d round(s) of %d suite(s) in %v wall time; each run's test2json in %s\n",
		rounds, *n, len(suites), time.Since(start).Round(time.Second), logDir)
	if ld != nil {
		if n, _ := ld.status(); n > 0 {
			fmt.Printf("stressrun: the load exited and was restarted %d time(s) (see above)\n", n)
		}
	}
	if runErr != nil {
		return runErr
	}
	if f := t.failed(); f > 0 {
		return fmt.Errorf("%d test(s) failed at least one run", f)
	}
	return nil
}

// runRounds runs every suite n times, round by round, tallying each run, and returns the
// rounds completed; it stops early on an interrupt or if the load could not be kept
// running (what followed would not be under load).
func runRounds(ctx context.Context, t *tally, suites []*suite, n int, timeout time.Duration, logDir string, ld *load) (int, error) {
	for round := 1; round <= n; round++ {
		for _, s := range suites {
			if ld != nil {
				if _, err := ld.status(); err != nil {
					return round - 1, err
				}
			}
			began := time.Now()
			counts, err := s.run(ctx, t, timeout, logDir, round)
			if ctx.Err() != nil {
				return round - 1, fmt.Errorf("interrupted during round %d (%s); the table has the runs before", round, s.name)
			}
			if err != nil {
				return round - 1, err
			}
			fmt.Printf("stressrun: round %d/%d %s: %d passed, %d failed, %d skipped in %v\n",
				round, n, s.name, counts.pass, counts.fail, counts.skip, time.Since(began).Round(time.Second))
		}
	}
	if ld != nil {
		_, err := ld.status()
		return n, err
	}
	return n, nil
}

func makeLogDir(base string, start time.Time) (string, error) {
	if base == "" {
		base = os.TempDir()
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("logs: %w", err)
	}
	dir, err := os.MkdirTemp(base, "stress-"+start.Format("20060102-150405")+"-")
	if err != nil {
		return "", fmt.Errorf("logs: %w", err)
	}
	return dir, nil
}

var errUsage = errors.New("usage: stressrun [flags] PKG=PATTERN... (see go doc ./internal/testkit/stressrun)")

func parseSuites(args []string) ([]*suite, error) {
	if len(args) == 0 {
		return nil, errUsage
	}
	var suites []*suite
	for _, a := range args {
		pkg, pattern, ok := strings.Cut(a, "=")
		if !ok || pkg == "" || pattern == "" {
			return nil, fmt.Errorf("suite %q: %w", a, errUsage)
		}
		suites = append(suites, &suite{name: pkg, pkg: pkg, pattern: pattern})
	}
	return suites, nil
}
