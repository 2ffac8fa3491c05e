package signaling_test

import (
	"context"
	"testing"
	"time"

	"roombox/internal/testkit/lktest"
	"roombox/signaling"
)

// TestActiveSpeakerFromAudioLevels: livekit-server finds active speakers from the audio
// level on each packet; a participant in the room is told the box speaks while its
// microphone's tone plays, and that it stopped once it is muted.
func TestActiveSpeakerFromAudioLevels(t *testing.T) {
	srv := lktest.Start(t)
	speaker := startBox(t, srv.URL, signaling.StaticToken(lktest.Token(t, testRoom, "box")), false)
	listener := startBox(t, srv.URL, signaling.StaticToken(lktest.Token(t, testRoom, "listener")), true)
	waitEvent[signaling.Joined](t, speaker, 20*time.Second)
	waitEvent[signaling.Joined](t, listener, 20*time.Second)
	ctx := context.Background()
	p, err := srv.GetParticipant(ctx, testRoom, "box")
	if err != nil {
		t.Fatal(err)
	}
	// active waits for an update that says whether the box speaks.
	active := func(want bool, d time.Duration) float32 {
		t.Helper()
		for {
			ev, _ := waitEvent[signaling.ActiveSpeakers](t, listener, d)
			for _, s := range ev.Speakers {
				if s.SID == p.GetSid() && s.Active == want {
					return s.Level
				}
			}
		}
	}
	level := active(true, 20*time.Second)
	t.Logf("the box is an active speaker, level %.2f", level)
	if level <= 0 {
		t.Errorf("active speaker level %v, want > 0", level)
	}
	speaker.audio.SetMuted(true)
	if err := speaker.room.SetMuted(ctx, signaling.SourceMicrophone, true); err != nil {
		t.Fatal(err)
	}
	active(false, 20*time.Second)
}
