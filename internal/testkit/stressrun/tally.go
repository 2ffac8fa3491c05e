package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// event is the part of a test2json event (go doc test2json) the tally reads.
type event struct {
	Action string
	Test   string
	Output string
}

// Rows that are not tests: a run that failed outside any test (a build error, a panic in
// TestMain) and a pattern that matched nothing (a renamed test would otherwise pass forever).
const (
	rowPackage   = "(package)"
	rowNoneFound = "(no test matched)"
)

// outcome counts one test's results over all runs of its suite.
type outcome struct {
	pass, fail, skip int
	reasons          map[string]int // the first error line of each failure, counted
}

// tally counts pass, fail and skip per top-level test and suite over many runs.
type tally struct {
	runs  map[string]int // suite -> runs recorded
	tests map[string]map[string]*outcome
}

func newTally() *tally {
	return &tally{runs: map[string]int{}, tests: map[string]map[string]*outcome{}}
}

// runCounts is one run's result, for the progress line.
type runCounts struct{ pass, fail, skip int }

// reasonRe matches the lines that may say why a test failed: t.Error/t.Fatal's (and
// t.Log's) "file.go:N: ", and panics (a test binary's timeout is one).
var reasonRe = regexp.MustCompile(`^(\S+\.go:\d+: |panic: )`)

// keepReason returns the better of the reason so far and line: the first panic, else the
// last "file.go:N: " line. A t.Fatal is its test's last such line but for the dumps that
// cleanups log on failure (the daemon's log, the server's tail), whose headers end in ':'
// and whose bodies are raw log lines without the prefix; those headers are passed over.
func keepReason(cur, line string) string {
	if strings.HasPrefix(cur, "panic: ") || !reasonRe.MatchString(line) || strings.HasSuffix(line, ":") {
		return cur
	}
	return line
}

// maxReasonLen bounds a failure's line in the table; the run's log has it whole.
const maxReasonLen = 160

// add records one run of suite from its test2json stream. A test that started but has no
// result when the stream ends (the run timed out or crashed) counts as failed. Subtests are
// part of their top-level test: their error lines explain its failure.
func (t *tally) add(suite string, r io.Reader) (runCounts, error) {
	t.runs[suite]++
	if t.tests[suite] == nil {
		t.tests[suite] = map[string]*outcome{}
	}
	var (
		counts    runCounts
		started   []string            // top-level tests in start order
		done      = map[string]bool{} // top-level tests with a result
		reason    = map[string]string{}
		pkgFailed bool
		pkgReason string
		pkgLast   string
	)
	dec := json.NewDecoder(r)
	for {
		var e event
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return counts, fmt.Errorf("%s: reading test2json: %w", suite, err)
		}
		top, _, _ := strings.Cut(e.Test, "/")
		line := strings.TrimSpace(e.Output)
		switch {
		case e.Test == "": // the package's own events: start, output, pass or fail
			switch {
			case e.Action == "fail":
				pkgFailed = true
			case e.Action != "output":
			case strings.HasPrefix(line, "FAIL"), strings.HasPrefix(line, "exit status"):
				// go test's summary, not a reason
			case line != "":
				pkgReason, pkgLast = keepReason(pkgReason, line), line
			}
		case e.Action == "output":
			reason[top] = keepReason(reason[top], line)
		case e.Test != top: // a subtest's run, pass, fail or skip
		case e.Action == "run":
			started = append(started, top)
		case e.Action == "pass", e.Action == "fail", e.Action == "skip":
			done[top] = true
			t.record(suite, top, e.Action, reason[top], &counts)
		}
	}
	for _, name := range started {
		if !done[name] {
			why := "no result: the run timed out or crashed"
			if pkgReason != "" {
				why += " (" + pkgReason + ")"
			}
			t.record(suite, name, "fail", why, &counts)
		}
	}
	switch {
	case pkgFailed && counts.fail == 0:
		why := pkgReason
		if why == "" {
			why = pkgLast
		}
		t.record(suite, rowPackage, "fail", why, &counts)
	case len(started) == 0:
		t.record(suite, rowNoneFound, "fail", "the -run pattern matched no test", &counts)
	}
	return counts, nil
}

func (t *tally) record(suite, test, action, reason string, counts *runCounts) {
	o := t.tests[suite][test]
	if o == nil {
		o = &outcome{reasons: map[string]int{}}
		t.tests[suite][test] = o
	}
	switch action {
	case "pass":
		o.pass++
		counts.pass++
	case "skip":
		o.skip++
		counts.skip++
	default:
		o.fail++
		counts.fail++
		if reason == "" {
			reason = "no error line; see the run's log"
		}
		if len(reason) > maxReasonLen {
			reason = reason[:maxReasonLen] + "…"
		}
		o.reasons[reason]++
	}
}

// failed counts the tests that failed at least one run.
func (t *tally) failed() int {
	n := 0
	for _, tests := range t.tests {
		for _, o := range tests {
			if o.fail > 0 {
				n++
			}
		}
	}
	return n
}

// print writes one row per test of each suite (in the order given): passes out of the
// suite's runs, then failures, skips and runs without the test, and under a failing test
// its distinct error lines, most frequent first.
func (t *tally) print(w io.Writer, suites []string) {
	type row struct {
		suite, name string
		o           *outcome
	}
	var rows []row
	wSuite, wName := len("SUITE"), len("TEST")
	for _, suite := range suites {
		names := make([]string, 0, len(t.tests[suite]))
		for name := range t.tests[suite] {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			rows = append(rows, row{suite, name, t.tests[suite][name]})
			wSuite, wName = max(wSuite, len(suite)), max(wName, len(name))
		}
	}
	fmt.Fprintf(w, "%-*s  %-*s  PASSED\n", wSuite, "SUITE", wName, "TEST")
	for _, r := range rows {
		runs := t.runs[r.suite]
		notes := ""
		for _, n := range []struct {
			count int
			what  string
		}{{r.o.fail, "failed"}, {r.o.skip, "skipped"}, {runs - r.o.pass - r.o.fail - r.o.skip, "not run"}} {
			if n.count > 0 {
				notes += fmt.Sprintf("  %d %s", n.count, n.what)
			}
		}
		fmt.Fprintf(w, "%-*s  %-*s  %d/%d%s\n", wSuite, r.suite, wName, r.name, r.o.pass, runs, notes)
		for _, reason := range byCount(r.o.reasons) {
			fmt.Fprintf(w, "%*s  %d× %s\n", wSuite, "", r.o.reasons[reason], reason)
		}
	}
}

func byCount(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
