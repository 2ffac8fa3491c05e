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

// loadStopGrace is how long the load has to exit after SIGTERM before its group is killed.
const loadStopGrace = 5 * time.Second

// load is the CPU load (stress-ng) the runs happen under. It is stopped whatever ends the
// runs: stop is deferred in run, an interrupt cancels the runs and returns through it, and
// the process dies with stressrun (Pdeathsig) should stressrun itself be killed.
type load struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and err is set
	err  error
	once sync.Once
}

func startLoad(argv []string) (*load, error) {
	if len(argv) == 0 {
		return nil, errors.New("load: empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	l := &load{name: strings.Join(argv, " "), cmd: cmd, done: make(chan struct{})}
	go func() {
		l.err = cmd.Wait()
		close(l.done)
	}()
	return l, nil
}

// check returns an error if the load has exited: the runs since were not under load.
func (l *load) check() error {
	select {
	case <-l.done:
		return fmt.Errorf("load %q exited during the runs: %v", l.name, l.err)
	default:
		return nil
	}
}

// stop ends the load's process group (SIGTERM, then SIGKILL after loadStopGrace) and waits
// for it; later calls do nothing.
func (l *load) stop() {
	l.once.Do(func() {
		signalGroup(l.cmd, syscall.SIGTERM)
		select {
		case <-l.done:
		case <-time.After(loadStopGrace):
			signalGroup(l.cmd, syscall.SIGKILL)
			<-l.done
		}
	})
}
