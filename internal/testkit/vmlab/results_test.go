package vmlab

import (
	"maps"
	"slices"
	"testing"
)

func TestGoTestResults(t *testing.T) {
	out := `=== RUN   TestA
    a_test.go:1: figure: vivid_640x360_fps=30.1 frames/s
--- PASS: TestA (1.10s)
=== RUN   TestB
=== RUN   TestB/320x180
    --- FAIL: TestB/320x180 (0.50s)
--- FAIL: TestB (0.50s)
=== RUN   TestC
--- SKIP: TestC (0.00s)
=== RUN   TestD
panic: test timed out after 1m0s
FAIL
`
	want := map[string]string{"TestA": "PASS", "TestB/320x180": "FAIL", "TestB": "FAIL", "TestC": "SKIP"}
	if got := GoTestResults(out); !maps.Equal(got, want) {
		t.Errorf("GoTestResults = %v, want %v", got, want)
	}
	if got, want := Figures(out), []string{"vivid_640x360_fps=30.1 frames/s"}; !slices.Equal(got, want) {
		t.Errorf("Figures = %q, want %q", got, want)
	}
}

func TestParseSerial(t *testing.T) {
	res := &Result{Serial: `[    1.9] Run /init as init process
VMLAB-INIT 2.37
VMLAB-INSMOD-FAILED vivid
VMLAB-BEGIN first
line 1
VMLAB-END first 0
VMLAB-BEGIN second
line 2
VMLAB-END second 3
VMLAB-BEGIN third
cut off
`}
	parseSerial(res)
	if res.Uptime != 2.37 || !slices.Equal(res.NoModule, []string{"vivid"}) {
		t.Errorf("uptime %v, failed modules %v; want 2.37 and [vivid]", res.Uptime, res.NoModule)
	}
	want := map[string]Section{
		"first":  {Output: "line 1\n", Exit: 0},
		"second": {Output: "line 2\n", Exit: 3},
		"third":  {Output: "cut off\n", Exit: -1},
	}
	if !maps.Equal(res.Sections, want) {
		t.Errorf("sections %v, want %v", res.Sections, want)
	}
}
