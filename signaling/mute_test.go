package signaling_test

import (
	"context"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/testwait"
	"roombox/signaling"
)

// The Room sends a mute only when the server was not told it already; a moderator's change
// (here an unmute request the server applies to the track itself) makes what it was told
// unknown, so a SetMuted of the unchanged value reaches the server again.
func TestSetMutedAfterServerChangedIt(t *testing.T) {
	srv := lktest.Start(t, lktest.WithRoom(func(rc *lktest.RoomConfig) { rc.EnableRemoteUnmute = true }))
	b := startBox(t, srv.URL, signaling.StaticToken(lktest.Token(t, testRoom, "box")), true)
	waitEvent[signaling.Joined](t, b, 20*time.Second)
	ctx := context.Background()
	micMuted := func() (muted, ok bool) {
		p, err := srv.GetParticipant(ctx, testRoom, "box")
		if err != nil {
			return false, false
		}
		tr := lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE)
		return tr.GetMuted(), tr != nil
	}
	testwait.For(t, "the mic published muted", 10*time.Second, func() bool {
		m, ok := micMuted()
		return ok && m
	})

	sid := b.room.State().Published[signaling.SourceMicrophone]
	if _, err := srv.MutePublishedTrack(ctx, testRoom, "box", sid, false); err != nil {
		t.Fatal(err)
	}
	if ev, _ := waitEvent[signaling.LocalTrackMuted](t, b, 10*time.Second); ev.Muted || ev.TrackSID != sid {
		t.Fatalf("the moderator's request reached the room as %+v, want an unmute of %s", ev, sid)
	}
	if m, ok := micMuted(); !ok || m {
		t.Fatalf("the server did not unmute the track itself (muted %v, listed %v)", m, ok)
	}
	if err := b.room.SetMuted(ctx, signaling.SourceMicrophone, true); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the server to have the mic muted again", 10*time.Second, func() bool {
		m, ok := micMuted()
		return ok && m
	})
}
