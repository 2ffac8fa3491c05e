package signaling_test

import (
	"testing"
	"time"

	"roombox/signaling"
)

// The default rejoin schedule: 300 ms doubling to 10 s, each wait jittered within the upper
// half of its step.
func TestBackoffDefault(t *testing.T) {
	const ms = time.Millisecond
	for n, want := range map[int]time.Duration{1: 300 * ms, 2: 600 * ms, 6: 9600 * ms, 7: 10 * time.Second, 100: 10 * time.Second} {
		for range 50 {
			if d := signaling.Backoff(n); d < want/2 || d > want {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}
