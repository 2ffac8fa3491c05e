package main

import (
	"strings"
	"testing"
)

// stream is a test2json stream as go test -json writes it, one event per line.
func stream(events ...string) *strings.Reader {
	return strings.NewReader(strings.Join(events, "\n") + "\n")
}

func TestTallyCountsPassFailSkip(t *testing.T) {
	tl := newTally()
	run1 := stream(
		`{"Action":"start","Package":"p"}`,
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:10: joined in 3ms\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:12: no Reconnected within 15s\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"    roomboxtest.go:200: roombox log (/tmp/x):\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"        time=1 level=INFO msg=hello\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestA","Elapsed":1}`,
		`{"Action":"run","Package":"p","Test":"TestB"}`,
		`{"Action":"run","Package":"p","Test":"TestB/sub"}`,
		`{"Action":"skip","Package":"p","Test":"TestB/sub"}`,
		`{"Action":"pass","Package":"p","Test":"TestB"}`,
		`{"Action":"run","Package":"p","Test":"TestC"}`,
		`{"Action":"skip","Package":"p","Test":"TestC"}`,
		`{"Action":"fail","Package":"p"}`,
	)
	got, err := tl.add("./p", run1)
	if err != nil {
		t.Fatal(err)
	}
	if got != (runCounts{pass: 1, fail: 1, skip: 1}) {
		t.Fatalf("counts %+v, want 1 pass, 1 fail, 1 skip", got)
	}
	a := tl.tests["./p"]["TestA"]
	if want := "a_test.go:12: no Reconnected within 15s"; a.reasons[want] != 1 {
		t.Fatalf("TestA's reasons %v, want %q (the last error line before the cleanup's dump)", a.reasons, want)
	}
	if c := tl.tests["./p"]["TestC"]; c.skip != 1 || c.pass != 0 {
		t.Fatalf("TestC %+v, want skipped and not passed", c)
	}
	if tl.failed() != 1 {
		t.Fatalf("failed() = %d, want 1", tl.failed())
	}
}

// A run killed by its timeout: the test that was running has no result and counts as
// failed, with the panic as the reason; tests that never ran show as not run.
func TestTallyUnfinishedRunFails(t *testing.T) {
	tl := newTally()
	if _, err := tl.add("./p", stream(
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"run","Package":"p","Test":"TestB"}`,
		`{"Action":"pass","Package":"p","Test":"TestB"}`,
		`{"Action":"pass","Package":"p"}`,
	)); err != nil {
		t.Fatal(err)
	}
	got, err := tl.add("./p", stream(
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Output":"panic: test timed out after 1m0s\n"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t60.1s\n"}`,
		`{"Action":"fail","Package":"p"}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	if got.fail != 1 {
		t.Fatalf("counts %+v, want TestA failed", got)
	}
	a := tl.tests["./p"]["TestA"]
	if a.pass != 1 || a.fail != 1 {
		t.Fatalf("TestA %+v, want 1 pass and 1 fail", a)
	}
	var out strings.Builder
	tl.print(&out, []string{"./p"})
	for _, want := range []string{
		"TestA  1/2  1 failed",
		"1× no result: the run timed out or crashed (panic: test timed out after 1m0s)",
		"TestB  1/2  1 not run",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// A package that fails outside its tests, and a pattern that matches no test, are failures
// with rows of their own.
func TestTallyPackageFailureAndNoTests(t *testing.T) {
	tl := newTally()
	if _, err := tl.add("./p", stream(
		`{"Action":"output","Package":"p","Output":"setup_test.go:9: TestMain: no livekit-server\n"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}`,
		`{"Action":"fail","Package":"p"}`,
	)); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.add("./q", stream(
		`{"Action":"output","Package":"q","Output":"testing: warning: no tests to run\n"}`,
		`{"Action":"pass","Package":"q"}`,
	)); err != nil {
		t.Fatal(err)
	}
	if o := tl.tests["./p"][rowPackage]; o == nil || o.reasons["setup_test.go:9: TestMain: no livekit-server"] != 1 {
		t.Fatalf("package row %+v", o)
	}
	if o := tl.tests["./q"][rowNoneFound]; o == nil || o.fail != 1 {
		t.Fatalf("no-test row %+v", o)
	}
	if tl.failed() != 2 {
		t.Fatalf("failed() = %d, want 2", tl.failed())
	}
}
