// Package testwait holds the waits tests share: polling a condition until a deadline, and a
// goroutine the test owns that its cleanup stops and waits for. Standard library only, so
// any package's internal tests can use it without an import cycle.
package testwait

import (
	"context"
	"testing"
	"time"
)

// DefaultEvery is how often For polls its condition.
const DefaultEvery = 20 * time.Millisecond

// For polls cond every DefaultEvery until it holds, failing the test (Fatalf) if it does not
// within d. what names the condition in the failure.
func For(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	ForEvery(t, what, d, DefaultEvery, cond)
}

// ForEvery is For polling every every: a short period for conditions a test waits on many
// times over (a fake clock's steps), where DefaultEvery would make it slow.
func ForEvery(t testing.TB, what string, d, every time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(every)
	}
}

// Running is a goroutine started by Go.
type Running struct {
	done chan struct{}
	err  error
}

// Done is closed when the goroutine's function has returned.
func (r *Running) Done() <-chan struct{} { return r.done }

// Err is what the function returned; valid once Done is closed.
func (r *Running) Err() error {
	<-r.done
	return r.err
}

// Go runs run on a goroutine with a context the test's cleanup cancels. The cleanup then
// waits up to limit for run to return, and fails the test (Errorf) if it returned an error
// or did not return in time. what names run in the failures.
func Go(t testing.TB, what string, limit time.Duration, run func(context.Context) error) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
			if r.err != nil {
				t.Errorf("%s: %v", what, r.err)
			}
		case <-time.After(limit):
			t.Errorf("%s did not return within %v of its context ending", what, limit)
		}
	})
	return r
}
