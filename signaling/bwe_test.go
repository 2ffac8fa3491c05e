package signaling

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtp"

	"roombox/internal/testkit/testwait"
)

// TestLeakyBucketPacerQueues measures why bwe.go uses gcc's NoOpPacer: a second of video at
// the three layers' 2.2 Mbit/s, written at once (as an encoder writes a frame's packets),
// leaves a LeakyBucketPacer started at 1 Mbit/s (it sends 1.5 times its target) only after
// well over a second; the NoOpPacer has sent every packet before Write returns.
func TestLeakyBucketPacerQueues(t *testing.T) {
	const (
		bitrate = 2_200_000
		size    = 1200
		packets = bitrate / 8 / size // one second's worth
	)
	payload := make([]byte, size)
	burst := func(p gcc.Pacer) (sent *atomic.Int64) {
		sent = &atomic.Int64{}
		p.AddStream(1, interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) {
			sent.Add(1)
			return size, nil
		}))
		for i := range packets {
			if _, err := p.Write(&rtp.Header{SSRC: 1, SequenceNumber: uint16(i)}, payload, nil); err != nil {
				t.Fatal(err)
			}
		}
		return sent
	}

	noop := gcc.NewNoOpPacer()
	if n := burst(noop).Load(); n != packets {
		t.Fatalf("NoOpPacer: %d of %d packets sent when Write returned", n, packets)
	}

	leaky := gcc.NewLeakyBucketPacer(1_000_000)
	defer func() { _ = leaky.Close() }()
	start := time.Now()
	sent := burst(leaky)
	testwait.For(t, "the leaky bucket to drain", 30*time.Second, func() bool { return sent.Load() == packets })
	drain := time.Since(start)
	t.Logf("LeakyBucketPacer at 1 Mbit/s: one second of %d kbit/s (%d packets) left over %v", bitrate/1000, packets, drain.Round(time.Millisecond))
	if drain < time.Second {
		t.Errorf("LeakyBucketPacer drained a second of %d kbit/s in %v; bwe.go's reasoning assumes it queues", bitrate/1000, drain)
	}
}
