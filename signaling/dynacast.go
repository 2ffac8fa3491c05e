package signaling

import (
	"strings"

	"github.com/livekit/protocol/livekit"
)

// LayersWanted: the server says which layers of one of our video tracks anyone receives
// (dynacast, SubscribedQualityUpdate). A layer nobody wants need not be encoded or sent;
// the track stays published, and the server asks again when a subscriber wants it back.
// livekit-server sends an upgrade at once and a downgrade after ~5 s, so a subscriber
// switching layers does not make the box stop and restart an encoder.
type LayersWanted struct {
	TrackSID string
	TrackID  string // the local track id (VideoTrack.ID), "" if the track is not ours
	// Wanted has one entry per quality the server spoke of (livekit-server speaks of all
	// three, whatever the track has).
	Wanted map[VideoQuality]bool
}

func (LayersWanted) event() {}

// onSubscribedQuality turns a SubscribedQualityUpdate into LayersWanted: the qualities of
// the H.264 codec (the box publishes no other), else the deprecated codec-less list older
// servers send.
func (s *Session) onSubscribedQuality(u *livekit.SubscribedQualityUpdate) {
	qs := u.GetSubscribedQualities()
	for _, c := range u.GetSubscribedCodecs() {
		if strings.EqualFold(strings.TrimPrefix(strings.ToLower(c.GetCodec()), "video/"), "h264") {
			qs = c.GetQualities()
		}
	}
	ev := LayersWanted{TrackSID: u.GetTrackSid(), Wanted: map[VideoQuality]bool{}}
	for _, q := range qs {
		if vq, ok := qualityOf(q.GetQuality()); ok {
			ev.Wanted[vq] = q.GetEnabled()
		}
	}
	s.mu.Lock()
	for cid, info := range s.published {
		if info.GetSid() == ev.TrackSID {
			ev.TrackID = cid
		}
	}
	s.mu.Unlock()
	s.log.Debug("layers wanted", "track", ev.TrackSID, "wanted", ev.Wanted)
	s.emit(ev)
}
