// Package lkprobetest runs tools/lkprobe, the independent LiveKit client (LiveKit's own Go
// SDK, built as a separate module so the firmware never imports it), as a process the test
// owns, and decodes the JSON lines it prints. The binary is $ROOMBOX_LKPROBE, else
// <repo root>/bin/lkprobe (`make lkprobe`); a missing binary fails the test.
package lkprobetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/testwait"
)

// EnvProbe names the environment variable holding the lkprobe binary path.
const EnvProbe = "ROOMBOX_LKPROBE"

// Line is one line lkprobe printed, every event's fields in one struct (see tools/lkprobe's
// package comment for which event has which).
type Line struct {
	Event       string  `json:"event"`
	Participant string  `json:"participant"`
	SID         string  `json:"sid"`
	Kind        string  `json:"kind"`
	Source      string  `json:"source"`
	MimeType    string  `json:"mime"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	Simulcast   bool    `json:"simulcast"`
	Muted       bool    `json:"muted"`
	SSRC        uint32  `json:"ssrc"`
	Layers      []Layer `json:"layers"`
	Packets     int     `json:"packets"`
	Frames      int     `json:"frames"`
	Keyframes   int     `json:"keyframes"`
	Bytes       int     `json:"bytes"`
	N           int     `json:"n"`   // pli: which PLI this is
	PLI         int     `json:"pli"` // keyframe: the PLI it answers, 0 for none
	PLIToIDRMs  float64 `json:"pli_to_idr_ms"`
	// keyframe: frames completed between the PLI and the IDR answering it
	FramesAfterPLI int    `json:"frames_after_pli"`
	Error          string `json:"error"`
	Reason         string `json:"reason"`
}

// Layer is a simulcast layer as the server describes it.
type Layer struct {
	Quality string `json:"quality"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	SSRC    uint32 `json:"ssrc"`
}

// Probe is a running lkprobe.
type Probe struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan struct{} // closed when the process has exited and its output is read
	err    error         // cmd.Wait's, valid after done
	stderr bytes.Buffer  // written by exec's copier until done

	mu    sync.Mutex
	lines []Line
	bad   []string // lines that were not JSON
}

// Start runs lkprobe -url url -token token with args appended; the test's cleanup sends it
// "quit" and waits for it to exit (10 s, then it is killed and the test fails), and logs its
// stderr if the test failed.
func Start(t testing.TB, url, token string, args ...string) *Probe {
	t.Helper()
	return StartWith(t, exec.Command, url, token, args...)
}

// StartWith is Start with the command made by command (exec.Command, or one that runs it in
// a network namespace).
func StartWith(t testing.TB, command func(name string, args ...string) *exec.Cmd, url, token string, args ...string) *Probe {
	t.Helper()
	bin, err := lktest.RepoBinary(EnvProbe, "lkprobe", "lkprobe")
	if err != nil {
		t.Fatalf("lkprobetest: %v", err)
	}
	p := &Probe{done: make(chan struct{})}
	p.cmd = command(bin, append([]string{"-url", url, "-token", token}, args...)...)
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = sysProcAttr()
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("lkprobetest: start %s: %v", bin, err)
	}
	go func() {
		p.read(stdout)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *Probe) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var l Line
		err := json.Unmarshal(sc.Bytes(), &l)
		p.mu.Lock()
		if err != nil {
			p.bad = append(p.bad, sc.Text())
		} else {
			p.lines = append(p.lines, l)
		}
		p.mu.Unlock()
	}
}

func (p *Probe) stop(t testing.TB) {
	_, _ = io.WriteString(p.stdin, "quit\n")
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("lkprobetest: lkprobe did not exit within 10 s of quit")
	}
	if p.err != nil {
		t.Errorf("lkprobetest: lkprobe exited: %v", p.err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bad) > 0 {
		t.Errorf("lkprobetest: lkprobe printed lines that are not JSON:\n%s", strings.Join(p.bad, "\n"))
	}
	if t.Failed() {
		t.Logf("lkprobetest: lkprobe's stderr:\n%s", p.stderr.String())
	}
}

// Send writes one command line to lkprobe's stdin ("pli", "quality LOW", ...).
func (p *Probe) Send(t testing.TB, command string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, command+"\n"); err != nil {
		t.Fatalf("lkprobetest: send %q: %v", command, err)
	}
}

// Lines returns the lines printed so far.
func (p *Probe) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Line(nil), p.lines...)
}

// Wait waits up to d for a line at index from or later that cond accepts and returns it
// with its index, failing the test if none arrives or lkprobe exits first. An "error" line
// fails the test too.
func (p *Probe) Wait(t testing.TB, what string, d time.Duration, from int, cond func(Line) bool) (Line, int) {
	t.Helper()
	var found Line
	at := -1
	testwait.For(t, what+" from lkprobe", d, func() bool {
		lines := p.Lines()
		for i := from; i < len(lines); i++ {
			if lines[i].Event == "error" {
				t.Fatalf("lkprobe: error: %s", lines[i].Error)
			}
			if cond(lines[i]) {
				found, at = lines[i], i
				return true
			}
		}
		select {
		case <-p.done:
			t.Fatalf("lkprobe exited (%v) while waiting for %s", p.err, what)
		default:
		}
		return false
	})
	return found, at
}

// Receive asks for quality (LOW, MEDIUM, HIGH) of track sid and waits, from line from on,
// for a keyframe of w x h and then a second of its pictures; it fails the test when that
// second is of another size, and returns its stats and the index of its line.
func (p *Probe) Receive(t testing.TB, sid, quality string, w, h, from int) (Line, int) {
	t.Helper()
	p.Send(t, "quality "+quality)
	kf, at := p.Wait(t, "a "+quality+" keyframe", 20*time.Second, from, func(l Line) bool {
		return l.Event == "keyframe" && l.SID == sid && l.Width == w && l.Height == h
	})
	st, at := p.Wait(t, "a second of "+quality, 20*time.Second, at+1, func(l Line) bool {
		return l.Event == "stats" && l.SID == sid && l.Frames > 0
	})
	if st.Width != w || st.Height != h {
		t.Fatalf("asked for %s: a second of %dx%d after a %dx%d keyframe, want %dx%d", quality, st.Width, st.Height, kf.Width, kf.Height, w, h)
	}
	return st, at
}
