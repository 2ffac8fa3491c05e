package signaling

import (
	"sort"
	"time"
)

// TrackStats are one published track's send statistics: counters from the sender, and
// loss, jitter and round-trip time from the SFU's receiver reports.
type TrackStats struct {
	TrackSID    string
	TrackID     string // the local (client) track id
	PacketsSent uint64
	BytesSent   uint64
	// BitrateBps is the send rate since the previous Room.Stats call (0 on the first).
	BitrateBps  float64
	PacketsLost int64
	Jitter      time.Duration
	RTT         time.Duration
	At          time.Time
}

// Stats reads the sender statistics of each published track.
func (s *Session) Stats() []TrackStats {
	s.mu.Lock()
	type pub struct {
		cid, sid string
		ssrc     uint32
	}
	pubs := make([]pub, 0, len(s.published))
	for cid, info := range s.published {
		pubs = append(pubs, pub{cid: cid, sid: info.GetSid(), ssrc: s.ssrcs[cid]})
	}
	s.mu.Unlock()
	now := time.Now()
	var out []TrackStats
	for _, p := range pubs {
		st := s.pubStats.get(p.ssrc)
		if st == nil {
			continue
		}
		out = append(out, TrackStats{
			TrackSID: p.sid, TrackID: p.cid, At: now,
			PacketsSent: st.OutboundRTPStreamStats.PacketsSent,
			BytesSent:   st.OutboundRTPStreamStats.BytesSent,
			PacketsLost: st.RemoteInboundRTPStreamStats.PacketsLost,
			Jitter:      seconds(st.RemoteInboundRTPStreamStats.Jitter),
			RTT:         st.RemoteInboundRTPStreamStats.RoundTripTime,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TrackID < out[j].TrackID })
	return out
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Stats returns the current session's per-track statistics with the send bitrate since
// the previous call; nil while not in the room.
func (r *Room) Stats() []TrackStats {
	sess := r.Session()
	if sess == nil {
		return nil
	}
	stats := sess.Stats()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastStats == nil {
		r.lastStats = map[string]TrackStats{}
	}
	for i, st := range stats {
		if prev, ok := r.lastStats[st.TrackID]; ok && st.At.After(prev.At) && st.BytesSent >= prev.BytesSent {
			stats[i].BitrateBps = float64(st.BytesSent-prev.BytesSent) * 8 / st.At.Sub(prev.At).Seconds()
		}
		r.lastStats[st.TrackID] = st
	}
	return stats
}
