package vmlab

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Result is what a boot printed and how long it took.
type Result struct {
	Serial   string             // the whole serial output, "\r\n" as "\n"
	Init     time.Duration      // from starting qemu to /init's first line
	Uptime   float64            // the guest kernel's uptime in seconds when /init started
	Total    time.Duration      // from starting qemu to its exit
	Sections map[string]Section // each Command's output, by name
	NoModule []string           // modules whose insmod failed
}

// Section is one Command's output and exit status.
type Section struct {
	Output string
	Exit   int
}

// parseSerial fills res's Uptime, Sections and NoModule from res.Serial.
func parseSerial(res *Result) {
	res.Sections = map[string]Section{}
	var cur string // the section being read, if any
	var body strings.Builder
	for line := range strings.Lines(res.Serial) {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 2 && fields[0] == markInit:
			res.Uptime, _ = strconv.ParseFloat(fields[1], 64)
		case len(fields) == 2 && fields[0] == markNoMod:
			res.NoModule = append(res.NoModule, fields[1])
		case len(fields) == 2 && fields[0] == markBegin:
			cur = fields[1]
			body.Reset()
		case len(fields) == 3 && fields[0] == markEnd && fields[1] == cur:
			exit, err := strconv.Atoi(fields[2])
			if err != nil {
				exit = -1
			}
			res.Sections[cur] = Section{Output: body.String(), Exit: exit}
			cur = ""
		case cur != "":
			body.WriteString(line)
		}
	}
	if cur != "" { // cut off: the section is there, unfinished
		res.Sections[cur] = Section{Output: body.String(), Exit: -1}
	}
}

// goTestStatus matches the line `go test -v` prints when a test or subtest ends.
var goTestStatus = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)

// GoTestResults reads `go test -v` output (of a test binary run directly) and returns the
// final status of every test and subtest that ended, by name ("TestX", "TestX/sub"): "PASS",
// "FAIL" or "SKIP". A test that never ended (a crash, a timeout) is absent.
func GoTestResults(out string) map[string]string {
	res := map[string]string{}
	for line := range strings.Lines(out) {
		if m := goTestStatus.FindStringSubmatch(line); m != nil {
			res[m[2]] = m[1]
		}
	}
	return res
}

// figureLine matches the "figure: NAME=VALUE UNIT" lines the guest tests log.
var figureLine = regexp.MustCompile(`figure: (\S+)=(\S+(?: \S+)?)\s*$`)

// Figures returns the figures logged in out, in order, as "NAME=VALUE UNIT".
func Figures(out string) []string {
	var fs []string
	for line := range strings.Lines(out) {
		if m := figureLine.FindStringSubmatch(line); m != nil {
			fs = append(fs, m[1]+"="+m[2])
		}
	}
	return fs
}
