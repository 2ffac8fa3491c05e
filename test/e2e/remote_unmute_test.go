package e2e

import (
	"path/filepath"
	"roombox/control"
	"strings"
	"testing"
	"time"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
)

// A fleet may allow the room to unmute the mic (--allow-remote-unmute in the signed
// provisioning token): then a moderator's unmute is obeyed without a local press, and the
// tone reaches the room again. TestModeratorMute shows the default, where it is not.
func TestRemoteUnmuteAllowedByProvisioning(t *testing.T) {
	srv := lktest.Start(t, lktest.WithRoom(func(rc *lktest.RoomConfig) { rc.EnableRemoteUnmute = true }))
	sub := joinSubscriber(t, srv.URL, lktest.Token(t, room, "watcher"))
	bin := roomboxtest.Binary(t)
	keys := t.TempDir()
	roomboxtest.MustCLI(t, bin, "fleet", "keygen", "--out", keys)
	tok := strings.TrimSpace(roomboxtest.MustCLI(t, bin, "fleet", "sign", "--key", filepath.Join(keys, "fleet.key"), "--url", srv.URL,
		"--livekit-token", lktest.Token(t, room, deviceIdentity), "--allow-remote-unmute"))
	stateDir := roomboxtest.StateDir(t)
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--fleet-key=", tok)
	roomboxtest.Start(t, bin, stateDir)
	testwait.For(t, "the device in the room", 20*time.Second, func() bool {
		return roomboxtest.StatusIs(bin, stateDir, func(st control.Status) bool { return st.State == "in-room" })
	})
	roomboxtest.MustCLI(t, bin, "mute", "--state-dir", stateDir)
	testwait.For(t, "the server to report the mic muted", 5*time.Second, func() bool {
		m, ok := micMutedOnServer(t, srv)
		return ok && m
	})

	moderatorMute(t, srv, false)
	asked := time.Now()
	testwait.For(t, "the device to obey the remote unmute", 5*time.Second, func() bool {
		st := roomboxtest.MustStatus(t, bin, stateDir)
		return !st.MicMuted && !st.LED
	})
	testwait.For(t, "the tone in the room", 5*time.Second, func() bool { return toneLevelSince(sub, asked) > toneDBFS })
}
