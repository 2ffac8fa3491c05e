package signaling

import (
	"time"

	"github.com/livekit/protocol/livekit"
)

// pinger keeps the signal connection alive and detects a silent server: ping and ping_req
// every ping_interval; after ping_timeout without any message it drops the connection, and
// the receive loop resumes. It pauses while there is no connection to ping.
func (s *Session) pinger() {
	defer s.wg.Done()
	interval := time.Duration(s.join.PingInterval) * time.Second
	timeout := time.Duration(s.join.PingTimeout) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	// Check often enough that a silent server is noticed close to the timeout.
	tick := time.NewTicker(min(interval, timeout/4))
	defer tick.Stop()
	var lastPing time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			s.mu.Lock()
			silent := now.Sub(s.sig.lastRecv)
			rtt, down := s.sig.rtt, s.sig.down
			s.mu.Unlock()
			if down {
				continue
			}
			if silent > timeout {
				s.dropSignal(ErrPingTimeout)
				continue
			}
			if now.Sub(lastPing) < interval {
				continue
			}
			lastPing = now
			ms := now.UnixMilli()
			s.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_Ping{Ping: ms}})
			s.send(&livekit.SignalRequest{Message: &livekit.SignalRequest_PingReq{
				PingReq: &livekit.Ping{Timestamp: ms, Rtt: rtt.Milliseconds()},
			}})
		}
	}
}
