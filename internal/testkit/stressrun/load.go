package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// loadStopGrace is how long the load has to exit after SIGTERM before its group is killed.
	loadStopGrace = 5 * time.Second
	// maxLoadRestarts bounds restarting a load that exits: on a shared machine another
	// user's `pkill stress-ng` ends ours too (seen here), but a load that keeps exiting is
	// broken.
	maxLoadRestarts = 50
	// minLoadLife: a load exiting sooner after its start is broken, not stopped by someone.
	minLoadLife = time.Second
)

// load is the CPU load (stress-ng) the runs happen under, kept running by a supervisor
// goroutine that restarts it whenever it exits, and stopped whatever ends the runs: stop is
// deferred in run, an interrupt cancels the runs and returns through it, and the process
// dies with stressrun (Pdeathsig) should stressrun itself be killed.
type load struct {
	name     string
	argv     []string
	stopping chan struct{} // closed by stop
	done     chan struct{} // closed when the supervisor has stopped the last process
	once     sync.Once

	mu       sync.Mutex
	pid      int
	restarts int
	err      error // why the supervisor gave up
}

// proc is one run of the load command.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited and err is set
	err     error
}

func startLoad(argv []string) (*load, error) {
	if len(argv) == 0 {
		return nil, errors.New("load: empty command")
	}
	p, err := startProc(argv)
	if err != nil {
		return nil, err
	}
	l := &load{name: strings.Join(argv, " "), argv: argv, pid: p.cmd.Process.Pid,
		stopping: make(chan struct{}), done: make(chan struct{})}
	go l.supervise(p)
	return l, nil
}

func startProc(argv []string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	p := &proc{cmd: cmd, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// supervise restarts the load each time it exits until stop, then stops it.
func (l *load) supervise(p *proc) {
	defer close(l.done)
	for {
		select {
		case <-l.stopping:
			p.stop()
			return
		case <-p.done:
		}
		lived := time.Since(p.started)
		l.mu.Lock()
		switch {
		case lived < minLoadLife:
			l.err = fmt.Errorf("load %q exited %v after its start: %v", l.name, lived.Round(time.Millisecond), p.err)
		case l.restarts == maxLoadRestarts:
			l.err = fmt.Errorf("load %q exited %d times; the last: %v", l.name, l.restarts+1, p.err)
		}
		if l.err != nil {
			l.mu.Unlock()
			return
		}
		l.restarts++
		l.mu.Unlock()
		fmt.Printf("stressrun: load exited after %v (%s); restarting it\n", lived.Round(time.Second), p.cmd.ProcessState)
		var err error
		if p, err = startProc(l.argv); err != nil {
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			return
		}
	}
}

// status is how often the load was restarted and, once the supervisor has given up (the
// runs since were not under load), why.
func (l *load) status() (restarts int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.restarts, l.err
}

// stop ends the load and waits for it; later calls do nothing.
func (l *load) stop() {
	l.once.Do(func() { close(l.stopping) })
	<-l.done
}

// stop ends the process's group (SIGTERM, then SIGKILL after loadStopGrace) and waits.
func (p *proc) stop() {
	signalGroup(p.cmd, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(loadStopGrace):
		signalGroup(p.cmd, syscall.SIGKILL)
		<-p.done
	}
}
