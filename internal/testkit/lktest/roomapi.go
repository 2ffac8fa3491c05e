package lktest

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"
)

// apiClient bounds each API call so a stopped (SIGSTOP) or wedged server cannot hang a test.
// Every call dials anew: a pooled connection would still lead to a node a test has killed,
// where a balancer in front sends each new connection to a live one.
var apiClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// API is the server API (Twirp RoomService with dev-key admin tokens) at any base URL: a
// Server's own, or a proxy's or load balancer's in front of a cluster. The Server methods of
// the same names call it with the server's HTTPURL.
type API struct {
	HTTPURL string // http://HOST:PORT
}

// NewAPI returns the API at httpURL (http://HOST:PORT).
func NewAPI(httpURL string) *API { return &API{HTTPURL: httpURL} }

// API returns the API at the server's own HTTPURL.
func (s *Server) API() *API { return NewAPI(s.HTTPURL) }

// RoomService returns a Twirp client for the server's RoomService. Calls need a context from
// AdminContext.
func (s *Server) RoomService() livekit.RoomService { return s.API().RoomService() }

// AdminContext returns ctx carrying an "Authorization: Bearer" admin token for room (see
// AdminToken), as the RoomService client expects.
func (s *Server) AdminContext(ctx context.Context, room string) (context.Context, error) {
	return s.API().AdminContext(ctx, room)
}

// ListRooms lists the server's active rooms.
func (s *Server) ListRooms(ctx context.Context) ([]*livekit.Room, error) {
	return s.API().ListRooms(ctx)
}

// CreateRoom creates room (rooms are also created by the first join).
func (s *Server) CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	return s.API().CreateRoom(ctx, req)
}

// ListParticipants lists room's participants with their published tracks (TrackInfo.Sid,
// Source, Muted, ...). A room that does not exist yields a Twirp not_found error.
func (s *Server) ListParticipants(ctx context.Context, room string) ([]*livekit.ParticipantInfo, error) {
	return s.API().ListParticipants(ctx, room)
}

// GetParticipant returns one participant of room.
func (s *Server) GetParticipant(ctx context.Context, room, identity string) (*livekit.ParticipantInfo, error) {
	return s.API().GetParticipant(ctx, room, identity)
}

// MutePublishedTrack asks the server to mute (or, if the server's room.enable_remote_unmute
// is set, request unmute of) a participant's track, as a room admin would.
func (s *Server) MutePublishedTrack(ctx context.Context, room, identity, trackSID string, muted bool) (*livekit.TrackInfo, error) {
	return s.API().MutePublishedTrack(ctx, room, identity, trackSID, muted)
}

// RemoveParticipant disconnects a participant from room.
func (s *Server) RemoveParticipant(ctx context.Context, room, identity string) error {
	return s.API().RemoveParticipant(ctx, room, identity)
}

// WaitParticipant polls room every 100 ms until identity is present and cond (nil: any)
// holds for it, or ctx ends; then it returns the last error seen.
func (s *Server) WaitParticipant(ctx context.Context, room, identity string, cond func(*livekit.ParticipantInfo) bool) (*livekit.ParticipantInfo, error) {
	return s.API().WaitParticipant(ctx, room, identity, cond)
}

// RoomService returns a Twirp client for the RoomService at a.HTTPURL. Calls need a context
// from AdminContext.
func (a *API) RoomService() livekit.RoomService {
	return livekit.NewRoomServiceProtobufClient(a.HTTPURL, apiClient)
}

// AdminContext returns ctx carrying an "Authorization: Bearer" admin token for room (see
// AdminToken), as the RoomService client expects.
func (a *API) AdminContext(ctx context.Context, room string) (context.Context, error) {
	tok, err := AdminToken(room)
	if err != nil {
		return nil, fmt.Errorf("lktest: admin token: %w", err)
	}
	h := make(http.Header)
	h.Set("Authorization", "Bearer "+tok)
	return twirp.WithHTTPRequestHeaders(ctx, h)
}

// ListRooms lists the server's active rooms.
func (a *API) ListRooms(ctx context.Context) ([]*livekit.Room, error) {
	ctx, err := a.AdminContext(ctx, "")
	if err != nil {
		return nil, err
	}
	res, err := a.RoomService().ListRooms(ctx, &livekit.ListRoomsRequest{})
	if err != nil {
		return nil, fmt.Errorf("lktest: ListRooms: %w", err)
	}
	return res.GetRooms(), nil
}

// CreateRoom creates room (rooms are also created by the first join).
func (a *API) CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	ctx, err := a.AdminContext(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	room, err := a.RoomService().CreateRoom(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("lktest: CreateRoom %q: %w", req.GetName(), err)
	}
	return room, nil
}

// ListParticipants lists room's participants with their published tracks (TrackInfo.Sid,
// Source, Muted, ...). A room that does not exist yields a Twirp not_found error.
func (a *API) ListParticipants(ctx context.Context, room string) ([]*livekit.ParticipantInfo, error) {
	ctx, err := a.AdminContext(ctx, room)
	if err != nil {
		return nil, err
	}
	res, err := a.RoomService().ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: room})
	if err != nil {
		return nil, fmt.Errorf("lktest: ListParticipants %q: %w", room, err)
	}
	return res.GetParticipants(), nil
}

// GetParticipant returns one participant of room.
func (a *API) GetParticipant(ctx context.Context, room, identity string) (*livekit.ParticipantInfo, error) {
	ctx, err := a.AdminContext(ctx, room)
	if err != nil {
		return nil, err
	}
	p, err := a.RoomService().GetParticipant(ctx, &livekit.RoomParticipantIdentity{Room: room, Identity: identity})
	if err != nil {
		return nil, fmt.Errorf("lktest: GetParticipant %q/%q: %w", room, identity, err)
	}
	return p, nil
}

// MutePublishedTrack asks the server to mute (or, if the server's room.enable_remote_unmute
// is set, request unmute of) a participant's track, as a room admin would.
func (a *API) MutePublishedTrack(ctx context.Context, room, identity, trackSID string, muted bool) (*livekit.TrackInfo, error) {
	ctx, err := a.AdminContext(ctx, room)
	if err != nil {
		return nil, err
	}
	res, err := a.RoomService().MutePublishedTrack(ctx, &livekit.MuteRoomTrackRequest{
		Room: room, Identity: identity, TrackSid: trackSID, Muted: muted,
	})
	if err != nil {
		return nil, fmt.Errorf("lktest: MutePublishedTrack %q/%q/%s muted=%v: %w", room, identity, trackSID, muted, err)
	}
	return res.GetTrack(), nil
}

// RemoveParticipant disconnects a participant from room.
func (a *API) RemoveParticipant(ctx context.Context, room, identity string) error {
	ctx, err := a.AdminContext(ctx, room)
	if err != nil {
		return err
	}
	if _, err := a.RoomService().RemoveParticipant(ctx, &livekit.RoomParticipantIdentity{Room: room, Identity: identity}); err != nil {
		return fmt.Errorf("lktest: RemoveParticipant %q/%q: %w", room, identity, err)
	}
	return nil
}

// WaitParticipant polls room every 100 ms until identity is present and cond (nil: any)
// holds for it, or ctx ends; then it returns the last error seen.
func (a *API) WaitParticipant(ctx context.Context, room, identity string, cond func(*livekit.ParticipantInfo) bool) (*livekit.ParticipantInfo, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		p, err := a.GetParticipant(ctx, room, identity)
		switch {
		case err != nil:
			last = err
		case cond == nil || cond(p):
			return p, nil
		default:
			last = fmt.Errorf("lktest: participant %q/%q does not meet the condition yet: %v", room, identity, p)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// TrackBySource returns p's first published track from src (e.g. livekit.TrackSource_CAMERA,
// livekit.TrackSource_MICROPHONE), or nil.
func TrackBySource(p *livekit.ParticipantInfo, src livekit.TrackSource) *livekit.TrackInfo {
	for _, tr := range p.GetTracks() {
		if tr.GetSource() == src {
			return tr
		}
	}
	return nil
}
