// Package e2e runs the real roombox binary against a real livekit-server and checks what
// arrives at a second participant.
package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"roombox/hal/sim"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
)

const (
	room             = "e2e"
	deviceIdentity   = "roombox-e2e"
	simWidth         = 1280 // roombox run's default camera (appliance.DefaultVideo)
	simHeight        = 720
	silentDBFS       = -60.0 // decoded 440 Hz level that counts as silence
	toneDBFS         = -30.0 // the sim mic's tone is about -10 dBFS; anything above this is the tone
	muteBudget       = 500 * time.Millisecond
	silenceHoldCheck = time.Second
)

// mutedOnServer asks the server (RoomService, admin token) whether the device's track of
// kind ("AUDIO", "VIDEO") is muted.
func mutedOnServer(t testing.TB, srv *lktest.Server, kind string) (muted, found bool) {
	t.Helper()
	ps, err := srv.ListParticipants(context.Background(), room)
	if err != nil {
		t.Fatalf("ListParticipants: %v", err)
	}
	for _, p := range ps {
		if p.Identity != deviceIdentity {
			continue
		}
		for _, tr := range p.Tracks {
			if tr.Type.String() == kind {
				return tr.Muted, true
			}
		}
	}
	return false, false
}

// micMutedOnServer is mutedOnServer for the microphone.
func micMutedOnServer(t testing.TB, srv *lktest.Server) (muted, found bool) {
	return mutedOnServer(t, srv, "AUDIO")
}

func TestDevicePublishesIntoRealRoom(t *testing.T) {
	srv := lktest.Start(t)
	bin := roomboxtest.Binary(t)
	stateDir := roomboxtest.StateDir(t)
	// Provisioned while the daemon is not running: stored directly in the state dir.
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--url", srv.URL,
		"--token", lktest.Token(t, room, deviceIdentity))

	sub := joinSubscriber(t, srv.URL, lktest.Token(t, room, "watcher"))
	d := roomboxtest.Start(t, bin, stateDir)

	// The control page's health endpoint answers without auth; the rest needs it.
	checkHTTP(t, d.PageURL(t))

	testwait.For(t, "the device's video and audio tracks", 20*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.tracks["video"] && sub.tracks["audio"] && sub.identities[deviceIdentity]
	})
	testwait.For(t, "30 H.264 frames including an IDR with SPS and PPS", 20*time.Second, func() bool {
		aus, _, _ := sub.snapshot()
		return len(aus) >= 30 && firstIDR(aus) >= 0
	})
	aus, _, firstKey := sub.snapshot()
	t.Logf("join: process start -> first keyframe at the subscriber: %v", firstKey.Sub(d.Started).Round(time.Millisecond))
	idr := firstIDR(aus)
	if !aus[idr].hasSPS || !aus[idr].hasPPS {
		t.Fatalf("first IDR lacks SPS/PPS (sps=%v pps=%v)", aus[idr].hasSPS, aus[idr].hasPPS)
	}

	// A real decoder decodes what arrived, from the first IDR on; the full-size pictures
	// (the SFU may forward a lower layer for a while) carry the sim camera's frame counter,
	// increasing. Decoded again each time 30 more units have arrived.
	var stamps []sim.Stamp
	tried := 0
	testwait.For(t, "20 full-size pictures with a stamp", 30*time.Second, func() bool {
		aus, _, _ := sub.snapshot()
		if len(aus) < tried+30 {
			return false
		}
		tried = len(aus)
		pics, err := decodePictures(aus)
		if err != nil {
			t.Fatal(err)
		}
		stamps = stamps[:0]
		for _, p := range pics {
			if p.width != simWidth || p.height != simHeight {
				continue
			}
			st, err := sim.DecodeStamp(p.gray, p.width, p.width, p.height)
			if err != nil {
				t.Fatalf("a %dx%d picture has no readable stamp: %v", p.width, p.height, err)
			}
			stamps = append(stamps, st)
		}
		return len(stamps) >= 20
	})
	for i := 1; i < len(stamps); i++ {
		if stamps[i].Seq <= stamps[i-1].Seq {
			t.Fatalf("frame counter not increasing at picture %d: %d then %d", i, stamps[i-1].Seq, stamps[i].Seq)
		}
	}
	t.Logf("decoded %d pictures, frame counter %d..%d", len(stamps), stamps[0].Seq, stamps[len(stamps)-1].Seq)

	// The tone arrives.
	testwait.For(t, "the 440 Hz tone", 10*time.Second, func() bool { return toneLevel(sub, 10) > toneDBFS })

	// Mute: silence within the budget, held, the server reports the track muted, the LED on.
	roomboxtest.MustCLI(t, bin, "mute", "--state-dir", stateDir)
	muted := time.Now()
	time.Sleep(muteBudget + silenceHoldCheck) // observe what arrives after the mute
	last, after := lastAudible(sub, muted)
	if lag := last.Sub(muted); !last.IsZero() && lag > muteBudget {
		t.Fatalf("audio still audible %v after roombox mute returned (budget %v)", lag, muteBudget)
	} else {
		t.Logf("mute -> last audible packet %v after the command returned; %d packets arrived after it", max(lag, 0).Round(time.Millisecond), after)
	}
	testwait.For(t, "the server to report the mic muted", 5*time.Second, func() bool {
		m, ok := micMutedOnServer(t, srv)
		return ok && m
	})
	if st := roomboxtest.MustStatus(t, bin, stateDir); !st.MicMuted || !st.LED || st.State != "in-room" {
		t.Fatalf("status after mute: %+v", st)
	}

	// Unmute: the tone returns and the server reports the track live.
	roomboxtest.MustCLI(t, bin, "unmute", "--state-dir", stateDir)
	unmuted := time.Now()
	testwait.For(t, "the tone after unmute", 5*time.Second, func() bool { return toneLevelSince(sub, unmuted) > toneDBFS })
	testwait.For(t, "the server to report the mic live", 5*time.Second, func() bool {
		m, ok := micMutedOnServer(t, srv)
		return ok && !m
	})
	if st := roomboxtest.MustStatus(t, bin, stateDir); st.MicMuted || st.LED {
		t.Fatalf("status after unmute: %+v", st)
	}
}

func firstIDR(aus []accessUnit) int {
	for i, au := range aus {
		if au.idr {
			return i
		}
	}
	return -1
}

// toneLevel is the weakest 440 Hz level over the last n decoded packets.
func toneLevel(s *subscriber, n int) float64 {
	_, audio, _ := s.snapshot()
	if len(audio) < n {
		return -200
	}
	lvl := 0.0
	for _, w := range audio[len(audio)-n:] {
		lvl = min(lvl, w.toneDBFS)
	}
	return lvl
}

// toneLevelSince is the weakest 440 Hz level over 10 packets decoded after t0.
func toneLevelSince(s *subscriber, t0 time.Time) float64 {
	_, audio, _ := s.snapshot()
	var after []audioWindow
	for _, w := range audio {
		if w.at.After(t0) {
			after = append(after, w)
		}
	}
	if len(after) < 10 {
		return -200
	}
	lvl := 0.0
	for _, w := range after[len(after)-10:] {
		lvl = min(lvl, w.toneDBFS)
	}
	return lvl
}

// lastAudible is the arrival of the last packet after t0 that carried the tone or any
// energy. The SFU stops forwarding a muted track, so silence is silent packets or none.
func lastAudible(s *subscriber, t0 time.Time) (last time.Time, after int) {
	_, audio, _ := s.snapshot()
	for _, w := range audio {
		if w.at.Before(t0) {
			continue
		}
		after++
		if w.toneDBFS > silentDBFS || w.rmsDBFS > silentDBFS {
			last = w.at
		}
	}
	return last, after
}

func checkHTTP(t *testing.T, pageURL string) {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(pageURL, "/") + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}
	resp, err = http.Get(strings.TrimSuffix(pageURL, "/") + "/api/status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API without a session: %s, want 401", resp.Status)
	}
}
