package lktest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"

	"roombox/internal/testkit/lktest"
)

func TestServerKillRestart(t *testing.T) {
	begin := time.Now()
	s := lktest.Start(t, lktest.WithRoom(func(r *lktest.RoomConfig) {
		r.EnableRemoteUnmute = true
		r.EmptyTimeout = 30
	}))
	t.Logf("livekit-server ready in %v at %s (pid %d)", time.Since(begin).Round(time.Millisecond), s.URL, s.PID())

	cfg := readFile(t, s.ConfigPath)
	for _, want := range []string{"enable_remote_unmute: true", "empty_timeout: 30", "node_ip: 127.0.0.1", "enable_loopback_candidate: true"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	rooms, err := s.ListRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 0 {
		t.Fatalf("fresh server has rooms: %v", rooms)
	}

	if _, err := s.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: "r1"}); err != nil {
		t.Fatal(err)
	}
	rooms, err = s.ListRooms(ctx)
	if err != nil || len(rooms) != 1 || rooms[0].GetName() != "r1" {
		t.Fatalf("ListRooms after CreateRoom = %v, %v; want [r1]", rooms, err)
	}
	parts, err := s.ListParticipants(ctx, "r1")
	if err != nil || len(parts) != 0 {
		t.Fatalf("ListParticipants(r1) = %v, %v; want none", parts, err)
	}

	port, pid := s.URL, s.PID()
	s.Kill()
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	if _, err := s.ListRooms(ctx); err == nil {
		t.Fatal("ListRooms answered after Kill")
	}

	begin = time.Now()
	s.Restart()
	t.Logf("restarted in %v (pid %d -> %d)", time.Since(begin).Round(time.Millisecond), pid, s.PID())
	if s.URL != port || s.PID() == pid || !s.Running() {
		t.Fatalf("after Restart: URL %s (was %s), pid %d (was %d), running %v", s.URL, port, s.PID(), pid, s.Running())
	}
	rooms, err = s.ListRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 0 {
		t.Fatalf("rooms survived a crash of a single-node server: %v", rooms)
	}

	s.Stop()
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	s.Restart()
	if _, err := s.ListRooms(ctx); err != nil {
		t.Fatalf("ListRooms after Stop+Restart: %v", err)
	}
}

func TestAPIRejectsForeignToken(t *testing.T) {
	s := lktest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A join token is not an admin token.
	tok := lktest.Token(t, "r1", "alice", lktest.TokenGrant(func(g *auth.VideoGrant) { g.SetCanPublish(false) }))
	actx, err := twirp.WithHTTPRequestHeaders(ctx, map[string][]string{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.RoomService().ListRooms(actx, &livekit.ListRoomsRequest{})
	var terr twirp.Error
	if !errors.As(err, &terr) || (terr.Code() != twirp.Unauthenticated && terr.Code() != twirp.PermissionDenied) {
		t.Fatalf("ListRooms with a join token: err = %v; want unauthenticated or permission_denied", err)
	}

	// A token signed with another secret is refused.
	bad, err := lktest.MintToken("r1", "mallory", lktest.TokenKeys(lktest.APIKey, "not-the-secret"))
	if err != nil {
		t.Fatal(err)
	}
	actx, err = twirp.WithHTTPRequestHeaders(ctx, map[string][]string{"Authorization": {"Bearer " + bad}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RoomService().ListRooms(actx, &livekit.ListRoomsRequest{}); err == nil {
		t.Fatal("ListRooms with a badly signed token succeeded")
	}

	// The admin helper works.
	if _, err := s.ListRooms(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTokenClaims(t *testing.T) {
	tok := lktest.Token(t, "demo", "roombox-demo", lktest.TokenTTL(time.Minute), lktest.TokenName("Box"))
	v, err := auth.ParseAPIToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	_, grants, err := v.Verify(lktest.APISecret)
	if err != nil {
		t.Fatal(err)
	}
	if grants.Identity != "roombox-demo" || grants.Name != "Box" || grants.Video == nil ||
		!grants.Video.RoomJoin || grants.Video.Room != "demo" {
		t.Fatalf("grants = %+v", grants)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
