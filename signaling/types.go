package signaling

import "github.com/livekit/protocol/livekit"

// The room as its users see it: roombox's own types, so no caller needs LiveKit's
// protobufs. The session converts at the edge (handler.go, room.go).

// Source is what a track carries.
type Source int

// Sources, the ones a room box publishes and sees.
const (
	SourceUnknown Source = iota
	SourceCamera
	SourceMicrophone
	SourceScreenShare
	SourceScreenShareAudio
)

func (s Source) String() string {
	switch s {
	case SourceCamera:
		return "camera"
	case SourceMicrophone:
		return "microphone"
	case SourceScreenShare:
		return "screen_share"
	case SourceScreenShareAudio:
		return "screen_share_audio"
	}
	return "unknown"
}

var sourceToProto = map[Source]livekit.TrackSource{
	SourceUnknown:          livekit.TrackSource_UNKNOWN,
	SourceCamera:           livekit.TrackSource_CAMERA,
	SourceMicrophone:       livekit.TrackSource_MICROPHONE,
	SourceScreenShare:      livekit.TrackSource_SCREEN_SHARE,
	SourceScreenShareAudio: livekit.TrackSource_SCREEN_SHARE_AUDIO,
}

func (s Source) proto() livekit.TrackSource { return sourceToProto[s] }

func sourceOf(p livekit.TrackSource) Source {
	for s, v := range sourceToProto {
		if v == p {
			return s
		}
	}
	return SourceUnknown
}

// TrackInfo is a published track.
type TrackInfo struct {
	SID    string
	Name   string
	Source Source
	Video  bool // else audio
	Muted  bool
	Width  uint32 // video, as published
	Height uint32
}

// Participant is someone in the room.
type Participant struct {
	SID      string
	Identity string
	Name     string
	Metadata string
	Tracks   []TrackInfo
}

// RoomInfo names the room.
type RoomInfo struct {
	SID      string
	Name     string
	Metadata string
}

// Speaker is an active speaker update: Level 0..1, Active false when they stopped.
type Speaker struct {
	SID    string
	Level  float32
	Active bool
}

// Quality is a participant's connection quality as the server rates it.
type Quality struct {
	SID     string
	Quality string // "excellent", "good", "poor", "lost"
	Score   float32
}

func trackInfo(t *livekit.TrackInfo) TrackInfo {
	return TrackInfo{SID: t.GetSid(), Name: t.GetName(), Source: sourceOf(t.GetSource()),
		Video: t.GetType() == livekit.TrackType_VIDEO, Muted: t.GetMuted(), Width: t.GetWidth(), Height: t.GetHeight()}
}

func participant(p *livekit.ParticipantInfo) Participant {
	out := Participant{SID: p.GetSid(), Identity: p.GetIdentity(), Name: p.GetName(), Metadata: p.GetMetadata()}
	for _, t := range p.GetTracks() {
		out.Tracks = append(out.Tracks, trackInfo(t))
	}
	return out
}

func roomInfo(r *livekit.Room) RoomInfo {
	return RoomInfo{SID: r.GetSid(), Name: r.GetName(), Metadata: r.GetMetadata()}
}
