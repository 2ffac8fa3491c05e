package backoff

import (
	"testing"
	"time"
)

const ms = time.Millisecond

func TestDelayDoublesToTheCap(t *testing.T) {
	p := Policy{Base: 250 * ms, Max: 5 * time.Second}
	for n, want := range map[int]time.Duration{
		-1: 250 * ms, 0: 250 * ms, 1: 250 * ms, 2: 500 * ms, 3: time.Second, 5: 4 * time.Second,
		6: 5 * time.Second, 7: 5 * time.Second, 1000: 5 * time.Second,
	} {
		if d := p.Delay(n); d != want {
			t.Errorf("Delay(%d) = %v, want %v", n, d, want)
		}
	}
}

// A Max that is not Base times a power of two still caps exactly, and a huge n does not
// overflow.
func TestDelayCapNotOnTheCurve(t *testing.T) {
	p := Policy{Base: 300 * ms, Max: 10 * time.Second}
	for n, want := range map[int]time.Duration{6: 9600 * ms, 7: 10 * time.Second, 1 << 20: 10 * time.Second} {
		if d := p.Delay(n); d != want {
			t.Errorf("Delay(%d) = %v, want %v", n, d, want)
		}
	}
}

// Jittered waits stay within [d/2, d] of the unjittered d and spread over that range.
func TestJitterRange(t *testing.T) {
	p := Policy{Base: 300 * ms, Max: 10 * time.Second, Jitter: true}
	exact := p
	exact.Jitter = false
	for _, n := range []int{1, 2, 4, 6, 7, 50} {
		want := exact.Delay(n)
		lo, hi := want, time.Duration(0)
		for range 1000 {
			d := p.Delay(n)
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// 1000 uniform draws miss the bottom or top tenth with probability 2·0.9^1000.
		if lo > want/2+want/20 || hi < want-want/20 {
			t.Errorf("Delay(%d) drew only [%v, %v] of [%v, %v]", n, lo, hi, want/2, want)
		}
	}
}
