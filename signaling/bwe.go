package signaling

import (
	"fmt"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/webrtc/v4"
)

// Bandwidth bounds the publisher's send-side bandwidth estimate: Google Congestion Control
// (pion's gcc) over the transport-wide CC feedback livekit-server sends for every video
// packet carrying a transport-wide sequence number. livekit-server sends no REMB, so without
// the sequence numbers the box would learn nothing of its uplink.
type Bandwidth struct {
	// Start is the estimate before any feedback: default 1 Mbit/s, a 640x360 layer and
	// audio, what a Pi's uplink carries on almost any LAN.
	Start int
	// Min is the floor: default 150 kbit/s, the lowest layer (320x180) and Opus, so the
	// estimate never asks for less than one watchable picture with sound.
	Min int
	// Max caps the estimate: default 3 Mbit/s, the three default layers (1.5 Mbit/s +
	// 500 + 150 kbit/s) and audio with room to spare; gcc would otherwise climb to 50 Mbit/s.
	Max int
}

func (b Bandwidth) withDefaults() Bandwidth {
	if b.Start == 0 {
		b.Start = 1_000_000
	}
	if b.Min == 0 {
		b.Min = 150_000
	}
	if b.Max == 0 {
		b.Max = 3_000_000
	}
	return b
}

// bwe holds the publisher connection's estimator, set when the connection is made.
type bwe struct {
	mu  sync.Mutex
	est cc.BandwidthEstimator
	// changed holds one pending wake-up for the session's notifier: gcc reports each change
	// on a goroutine of its own (unordered), so the notifier reads the latest value instead.
	changed chan struct{}
}

func newBWE() *bwe { return &bwe{changed: make(chan struct{}, 1)} }

func (b *bwe) target() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.est == nil {
		return 0
	}
	return b.est.GetTargetBitrate()
}

func (b *bwe) stats() map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.est == nil {
		return nil
	}
	return b.est.GetStats()
}

// register adds congestion control to a publisher's interceptors: the estimator, then the
// interceptor stamping transport-wide sequence numbers. pion chains interceptors so the one
// registered last sees an outgoing packet first: the number is on the packet when the
// estimator records it as sent (pion's bandwidth-estimation examples register them so, and
// before NACK, so a retransmission gets a number of its own and counts as sent).
//
// The pacer is gcc's NoOpPacer: packets leave as they are written, and the estimate's user
// (the encoders' bitrates) keeps the rate under it. gcc's LeakyBucketPacer sends at most
// 1.5 times the estimate from an unbounded queue: from its 1 Mbit/s start, one second of the
// three layers' 2.2 Mbit/s takes 1.17 s to leave it (bwe_test.go, TestLeakyBucketPacerQueues),
// so the queue, and the picture's delay, grow by ~0.17 s every second until the estimate
// catches up; and as gcc times a packet when the pacer releases it, that delay is invisible
// to the estimate. It also copies every packet and runs a 5 ms ticker.
func (b *bwe) register(m *webrtc.MediaEngine, reg *interceptor.Registry, bw Bandwidth) error {
	bw = bw.withDefaults()
	f, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(gcc.SendSideBWEInitialBitrate(bw.Start), gcc.SendSideBWEMinBitrate(bw.Min),
			gcc.SendSideBWEMaxBitrate(bw.Max), gcc.SendSideBWEPacer(gcc.NewNoOpPacer()))
	})
	if err != nil {
		return fmt.Errorf("signaling: congestion control: %w", err)
	}
	f.OnNewPeerConnection(func(_ string, est cc.BandwidthEstimator) {
		est.OnTargetBitrateChange(func(int) {
			select {
			case b.changed <- struct{}{}:
			default:
			}
		})
		b.mu.Lock()
		b.est = est
		b.mu.Unlock()
	})
	reg.Add(f)
	hdr, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return fmt.Errorf("signaling: transport-wide sequence numbers: %w", err)
	}
	reg.Add(hdr)
	return nil
}

// TargetBitrate is the publisher connection's bandwidth estimate in bits per second: what
// the box may send in all (audio and every video layer). Before any feedback it is
// Bandwidth.Start.
func (s *Session) TargetBitrate() int { return s.bwe.target() }

// BandwidthStats are gcc's internal figures (loss and delay estimates, state), for logs.
func (s *Session) BandwidthStats() map[string]any { return s.bwe.stats() }

// Congested reports whether gcc's latest update saw congestion: its delay detector in its
// decrease state (queues growing on the path), or loss above the 10 % at which its loss
// controller lowers the estimate. A lower estimate without it is gcc following a send rate
// below it (it raises its estimate to at most 1.5 times what it sees arrive).
func (s *Session) Congested() bool {
	st := s.bwe.stats()
	state, _ := st["state"].(string)
	loss, _ := st["averageLoss"].(float64)
	return state == "decrease" || loss > 0.1
}

// notifyBitrate delivers estimate changes to Options.OnTargetBitrateChange, in order and
// coalesced (the latest value), on a goroutine in s.wg until the session ends.
func (s *Session) notifyBitrate() {
	defer s.wg.Done()
	last := 0
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.bwe.changed:
			if bps := s.bwe.target(); bps != last {
				last = bps
				s.opts.OnTargetBitrateChange(bps)
			}
		}
	}
}
