package e2e

import (
	"context"
	"roombox/control"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
)

// provisionedDevice provisions a fresh state dir for the server and starts the daemon.
func provisionedDevice(t *testing.T, srv *lktest.Server) (bin, stateDir string, d *roomboxtest.Daemon) {
	t.Helper()
	bin = roomboxtest.Binary(t)
	stateDir = roomboxtest.StateDir(t)
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--url", srv.URL, "--token", lktest.Token(t, room, deviceIdentity))
	d = roomboxtest.Start(t, bin, stateDir)
	testwait.For(t, "the device in the room", 20*time.Second, func() bool {
		return roomboxtest.StatusIs(bin, stateDir, func(st control.Status) bool { return st.State == "in-room" })
	})
	return bin, stateDir, d
}

// The server is killed (-9) and restarted: the device rejoins and republishes once it is
// back, with its microphone still muted.
func TestDeviceRejoinsAfterServerKilled(t *testing.T) {
	srv := lktest.Start(t)
	bin, stateDir, _ := provisionedDevice(t, srv)
	roomboxtest.MustCLI(t, bin, "mute", "--state-dir", stateDir)
	testwait.For(t, "the server to report the mic muted", 5*time.Second, func() bool {
		m, ok := micMutedOnServer(t, srv)
		return ok && m
	})

	srv.Kill()
	testwait.For(t, "the device to notice", 20*time.Second, func() bool {
		return roomboxtest.MustStatus(t, bin, stateDir).State != "in-room"
	})
	srv.Restart()
	back := time.Now()
	testwait.For(t, "the device back in the room", 30*time.Second, func() bool {
		st := roomboxtest.MustStatus(t, bin, stateDir)
		return st.State == "in-room" && st.Joins == 2
	})
	t.Logf("rejoin: server back -> device in room in %v", time.Since(back).Round(time.Millisecond))
	testwait.For(t, "both tracks republished", 10*time.Second, func() bool {
		p, err := srv.GetParticipant(context.Background(), room, deviceIdentity)
		return err == nil && len(p.Tracks) == 2
	})
	if m, ok := micMutedOnServer(t, srv); !ok || !m {
		t.Fatalf("after the rejoin the server has the mic muted=%v (found %v); want muted", m, ok)
	}
	if st := roomboxtest.MustStatus(t, bin, stateDir); !st.MicMuted || !st.LED {
		t.Fatalf("status after rejoin: %+v", st)
	}
}

// A moderator mutes the device's microphone through the server API: the device mutes
// itself (silence, LED, status). A remote unmute request is not obeyed.
func TestModeratorMute(t *testing.T) {
	srv := lktest.Start(t, lktest.WithRoom(func(rc *lktest.RoomConfig) { rc.EnableRemoteUnmute = true }))
	sub := joinSubscriber(t, srv.URL, lktest.Token(t, room, "watcher"))
	bin, stateDir, _ := provisionedDevice(t, srv)
	testwait.For(t, "the tone", 15*time.Second, func() bool { return toneLevel(sub, 10) > toneDBFS })

	moderatorMute(t, srv, true)
	muted := time.Now()
	testwait.For(t, "the device to mute itself", 5*time.Second, func() bool {
		st := roomboxtest.MustStatus(t, bin, stateDir)
		return st.MicMuted && st.LED
	})
	time.Sleep(muteBudget + silenceHoldCheck)
	if last, _ := lastAudible(sub, muted); !last.IsZero() && last.Sub(muted) > muteBudget {
		t.Fatalf("audio still audible %v after the moderator mute", last.Sub(muted))
	}

	// The room asks to unmute: the device stays muted until someone presses mic.
	moderatorMute(t, srv, false)
	asked := time.Now()
	time.Sleep(time.Second)
	if st := roomboxtest.MustStatus(t, bin, stateDir); !st.MicMuted || !st.LED {
		t.Fatalf("device unmuted on a remote request: %+v", st)
	}
	if last, _ := lastAudible(sub, asked); !last.IsZero() {
		t.Fatal("audio left the device after a remote unmute request")
	}
	roomboxtest.MustCLI(t, bin, "press", "mic", "--state-dir", stateDir)
	pressed := time.Now()
	testwait.For(t, "the tone after a local press", 5*time.Second, func() bool { return toneLevelSince(sub, pressed) > toneDBFS })
}

// moderatorMute mutes or unmutes the device's microphone through the server API, as a
// room moderator does.
func moderatorMute(t *testing.T, srv *lktest.Server, muted bool) {
	t.Helper()
	p, err := srv.GetParticipant(context.Background(), room, deviceIdentity)
	if err != nil {
		t.Fatal(err)
	}
	mic := lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE)
	if _, err := srv.MutePublishedTrack(context.Background(), room, deviceIdentity, mic.Sid, muted); err != nil {
		t.Fatalf("MutePublishedTrack(muted=%v): %v", muted, err)
	}
}
