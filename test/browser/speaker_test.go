//go:build linux

package browser

import (
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"roombox/internal/testkit/echotest"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
)

// TestActiveSpeakerInBrowser: the official livekit-client in Chromium lists the box among
// the active speakers while its microphone plays speech (roombox run --sim-mic), with an
// audioLevel above 0, drops it once the box is muted, and lists it again when unmuted. The
// server knows who speaks only from the audio level the box puts on every Opus packet.
func TestActiveSpeakerInBrowser(t *testing.T) {
	const room, identity = "browser-speaker", "roombox-speaker"
	speech := filepath.Join(t.TempDir(), "speech.wav")
	if err := echotest.WriteWAV(speech, echotest.Speech(t, "en-us", echotest.Text, -20)); err != nil {
		t.Fatal(err)
	}
	srv, bin, stateDir := startSender(t, room, identity, "--sim-mic", speech)
	drv := startDriver(t)
	web := receiverServer(t)
	q := url.Values{
		"url":   {srv.URL},
		"token": {lktest.Token(t, room, "browser-listener", lktest.TokenTTL(time.Hour))},
		"from":  {identity},
	}
	drv.do("open", map[string]any{"page": "rx", "url": web.URL + "/receiver.html?" + q.Encode()})
	drv.do("waitText", map[string]any{"page": "rx", "selector": "#rx-state", "pattern": "^receiving$", "timeout": 30000})

	speaking := "(^|,)" + regexp.QuoteMeta(identity) + "(,|$)"
	notSpeaking := "^(?![\\s\\S]*" + speaking + ")"
	drv.do("waitText", map[string]any{"page": "rx", "selector": "#rx-speakers", "pattern": speaking, "timeout": 30000})
	text, _ := drv.read("rx", "#rx-level")
	level, err := strconv.ParseFloat(text, 64)
	if err != nil || level <= 0 {
		t.Fatalf("the box's audioLevel while speaking: %q (%v), want > 0", text, err)
	}
	t.Logf("livekit-client lists %s as an active speaker, audioLevel up to %.3f", identity, level)
	drv.screenshot("rx", "active-speaker")

	roomboxtest.MustCLI(t, bin, "mute", "--state-dir", stateDir)
	drv.do("waitText", map[string]any{"page": "rx", "selector": "#rx-speakers", "pattern": notSpeaking, "timeout": 30000})
	roomboxtest.MustCLI(t, bin, "unmute", "--state-dir", stateDir)
	drv.do("waitText", map[string]any{"page": "rx", "selector": "#rx-speakers", "pattern": speaking, "timeout": 30000})
	drv.do("close", map[string]any{"page": "rx"})
}
