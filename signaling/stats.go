package signaling

import (
	"slices"
	"sort"
	"time"
)

// TrackStats are one published track's send statistics: counters from the sender, and
// loss, jitter and round-trip time from the SFU's receiver reports. A simulcast track's
// are its layers' together: counters and loss summed, jitter and round trip the worst.
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
	// Layers are the sender's encodings, lowest first: a simulcast track's layers by rid,
	// a plain track's one (no rid).
	Layers []LayerStats
}

// LayerStats are the send counters of one encoding (one SSRC) of a track.
type LayerStats struct {
	RID         string
	PacketsSent uint64
	BytesSent   uint64
	BitrateBps  float64 // as TrackStats.BitrateBps
}

// encoding is one encoding of a local sender: its rid ("" for a plain track) and SSRC.
type encoding struct {
	rid  string
	ssrc uint32
}

// Stats reads the sender statistics of each published track.
func (s *Session) Stats() []TrackStats {
	s.mu.Lock()
	type pub struct {
		cid, sid  string
		encodings []encoding
	}
	pubs := make([]pub, 0, len(s.published))
	for cid, info := range s.published {
		pubs = append(pubs, pub{cid: cid, sid: info.GetSid(), encodings: s.encodings[cid]})
	}
	s.mu.Unlock()
	now := time.Now()
	var out []TrackStats
	for _, p := range pubs {
		ts := TrackStats{TrackSID: p.sid, TrackID: p.cid, At: now}
		for _, e := range p.encodings {
			st := s.pubStats.get(e.ssrc)
			if st == nil {
				continue // not bound yet
			}
			sent, remote := st.OutboundRTPStreamStats, st.RemoteInboundRTPStreamStats
			ts.Layers = append(ts.Layers, LayerStats{RID: e.rid, PacketsSent: sent.PacketsSent, BytesSent: sent.BytesSent})
			ts.PacketsSent += sent.PacketsSent
			ts.BytesSent += sent.BytesSent
			ts.PacketsLost += remote.PacketsLost
			ts.Jitter = max(ts.Jitter, seconds(remote.Jitter))
			ts.RTT = max(ts.RTT, remote.RoundTripTime)
		}
		if len(ts.Layers) > 0 {
			out = append(out, ts)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TrackID < out[j].TrackID })
	return out
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Stats returns the current session's per-track statistics with the send bitrates (each
// track's and each of its layers') since the previous call; nil while not in the room.
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
	for i := range stats {
		st := &stats[i]
		if prev, ok := r.lastStats[st.TrackID]; ok {
			st.BitrateBps = bitrate(prev.BytesSent, prev.At, st.BytesSent, st.At)
			for j, l := range st.Layers {
				if k := slices.IndexFunc(prev.Layers, func(p LayerStats) bool { return p.RID == l.RID }); k >= 0 {
					st.Layers[j].BitrateBps = bitrate(prev.Layers[k].BytesSent, prev.At, l.BytesSent, st.At)
				}
			}
		}
		kept := *st
		kept.Layers = slices.Clone(st.Layers) // the caller's to change
		r.lastStats[st.TrackID] = kept
	}
	return stats
}

// bitrate is the rate of bytes sent between two readings; 0 when the counter went back (a
// new session's sender) or no time passed.
func bitrate(prevBytes uint64, prevAt time.Time, bytes uint64, at time.Time) float64 {
	if !at.After(prevAt) || bytes < prevBytes {
		return 0
	}
	return float64(bytes-prevBytes) * 8 / at.Sub(prevAt).Seconds()
}
