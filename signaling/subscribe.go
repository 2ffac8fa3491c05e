package signaling

import (
	"context"
	"sort"

	"github.com/livekit/protocol/livekit"
)

func (s *Session) subscriptions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.subscribed))
	for sid := range s.subscribed {
		out = append(out, sid)
	}
	sort.Strings(out)
	return out
}

func (s *Session) isSubscribed(trackSID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribed[trackSID]
}

// UpdateSubscription subscribes to or unsubscribes from remote tracks. What is asked is
// also sent in SyncState after a resume, so a request queued by a resume is never lost.
func (s *Session) UpdateSubscription(ctx context.Context, subscribe bool, trackSIDs ...string) error {
	s.mu.Lock()
	for _, sid := range trackSIDs {
		if subscribe {
			s.subscribed[sid] = true
		} else {
			delete(s.subscribed, sid)
		}
	}
	s.mu.Unlock()
	return s.request(ctx, &livekit.SignalRequest{Message: &livekit.SignalRequest_Subscription{
		Subscription: &livekit.UpdateSubscription{TrackSids: trackSIDs, Subscribe: subscribe},
	}})
}
