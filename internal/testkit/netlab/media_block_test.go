//go:build linux

package netlab_test

import (
	"context"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/netlab"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
)

// mediaBlock is how long the device's media path is cut while its signal connection stays.
const mediaBlock = 5 * time.Second

// TestMediaBlockedResumesSameParticipant drops every UDP packet between the device and the
// server for 5 s (nftables on both sides' egress) while the signal WebSocket, over TCP, stays
// up. The device must notice the dead media path, resume with an ICE restart once the path
// is back, and stay the same participant: one join, the same participant sid on the server,
// its tracks still published, in the room again.
func TestMediaBlockedResumesSameParticipant(t *testing.T) {
	bin := roomboxtest.Binary(t)
	lab := netlab.New(t)
	lk := netlab.StartLiveKit(t, lab, nil)
	const room, identity = "mediablock", "box"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d := startRoombox(ctx, t, lab, bin, lk.DeviceURL, lktest.Token(t, room, identity), logDigest)

	published := func(p *livekit.ParticipantInfo) bool {
		return lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE) != nil &&
			lktest.TrackBySource(p, livekit.TrackSource_CAMERA) != nil
	}
	before, err := lk.WaitParticipant(ctx, room, identity, published)
	if err != nil {
		t.Fatalf("device did not publish: %v", err)
	}
	testwait.For(t, "the device in the room", 30*time.Second, func() bool {
		st, err := statusOf(bin, d.StateDir)
		return err == nil && st.State == "in-room"
	})

	lab.Device.Block()
	lab.Server.Block()
	blocked := time.Now()
	time.Sleep(mediaBlock) // the outage itself: what the device must ride out
	lab.Device.Unblock()
	lab.Server.Unblock()
	unblocked := time.Now()

	var st boxStatus
	testwait.For(t, "the device resumed and in the room", 30*time.Second, func() bool {
		st, err = statusOf(bin, d.StateDir)
		return err == nil && st.State == "in-room" && st.Resumes >= 1
	})
	t.Logf("media path blocked for %v; back in the room %v after it was unblocked (%v after the block began): joins %d, resumes %d",
		mediaBlock, time.Since(unblocked).Round(time.Millisecond), time.Since(blocked).Round(time.Millisecond), st.Joins, st.Resumes)
	if st.Joins != 1 {
		t.Fatalf("joins %d after the media block, want 1: the device rejoined instead of resuming", st.Joins)
	}
	after, err := lk.WaitParticipant(ctx, room, identity, published)
	if err != nil {
		t.Fatal(err)
	}
	if after.GetSid() != before.GetSid() {
		t.Fatalf("participant sid %s after the block, want the same %s", after.GetSid(), before.GetSid())
	}
}
