//go:build linux

package browser

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"roombox/control"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
)

// login opens the control page in a fresh context as page, checks the login form (a wrong
// password is refused with #login-error), screenshots it, and logs in with the setup code.
func login(t *testing.T, drv *driver, d *roomboxtest.Daemon, page, shot string) {
	t.Helper()
	drv.do("open", map[string]any{"page": page, "url": d.PageURL(t)})
	drv.do("wait", map[string]any{"page": page, "selector": "#password"})
	drv.do("wait", map[string]any{"page": page, "selector": "#login"})
	drv.screenshot(page, shot)

	drv.do("fill", map[string]any{"page": page, "selector": "#password", "value": "not-the-setup-code"})
	drv.do("click", map[string]any{"page": page, "selector": "#login"})
	r := drv.do("waitText", map[string]any{"page": page, "selector": "#login-error", "pattern": `\S`})
	var msg string
	r.field(t, "text", &msg)
	t.Logf("wrong password: #login-error %q", msg)

	drv.do("fill", map[string]any{"page": page, "selector": "#password", "value": d.SetupCode(t)})
	drv.do("click", map[string]any{"page": page, "selector": "#login"})
	drv.do("wait", map[string]any{"page": page, "selector": "#state", "timeout": 15000})
}

// micMutedOnServer waits until the server reports the device's microphone track muted (or
// unmuted).
func waitMicOnServer(t *testing.T, srv *lktest.Server, room, identity string, muted bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := srv.WaitParticipant(ctx, room, identity, func(p *livekit.ParticipantInfo) bool {
		tr := lktest.TrackBySource(p, livekit.TrackSource_MICROPHONE)
		return tr != nil && tr.Muted == muted
	})
	if err != nil {
		t.Fatalf("LiveKit server: %s's microphone track muted=%v not seen: %v", identity, muted, err)
	}
}

// TestControlPage: log in with the setup code, the device's preview plays in video#preview,
// and the page's mic toggle mutes the device: the LED (page and device), and the track on
// the LiveKit server; toggling again unmutes all three.
func TestControlPage(t *testing.T) {
	const room, identity = "browser-control", "roombox-page"
	srv := lktest.Start(t)
	bin := roomboxtest.Binary(t)
	stateDir := roomboxtest.StateDir(t)
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--url", srv.URL,
		"--token", lktest.Token(t, room, identity, lktest.TokenTTL(time.Hour)))
	d := roomboxtest.Start(t, bin, stateDir)
	d.WaitHealthy(t)
	drv := startDriver(t)

	login(t, drv, d, "control", "control-login")
	defer drv.diagnose("control")
	drv.do("waitText", map[string]any{"page": "control", "selector": "#state", "pattern": "in-room", "timeout": 30000})
	drv.do("waitText", map[string]any{"page": "control", "selector": "#room", "pattern": regexp.QuoteMeta(room)})
	drv.do("waitText", map[string]any{"page": "control", "selector": "#encoder", "pattern": `^x264 \(software\)$`})
	roomboxtest.WaitStatus(t, bin, stateDir, "in-room", 10*time.Second, func(s control.Status) bool { return s.State == "in-room" })
	if _, err := srv.GetParticipant(context.Background(), room, identity); err != nil {
		t.Fatalf("LiveKit server does not list the device: %v", err)
	}

	// The preview is WebRTC straight from the device: decoded pictures, and frames advancing.
	r := drv.do("video", map[string]any{"page": "control", "selector": "video#preview", "frames": 10, "timeout": 30000})
	var w, h, frames int
	r.field(t, "width", &w)
	r.field(t, "height", &h)
	r.field(t, "frames", &frames)
	t.Logf("preview plays: %dx%d, %d frames advanced", w, h, frames)
	if w <= 0 || h <= 0 || frames < 10 {
		t.Fatalf("preview: %dx%d and %d frames advanced, want a picture and 10 frames", w, h, frames)
	}
	// The microphone's meter moves with the sim tone.
	drv.do("waitText", map[string]any{"page": "control", "selector": "#meter-value", "pattern": `^−[0-9]+ dBov$`, "timeout": 10000})
	bandwidthChart(t, drv, "control")
	drv.screenshot("control", "control-page")

	// An audio setting from the page reaches the device.
	drv.do("selectOption", map[string]any{"page": "control", "selector": "#audio-noise_suppression", "value": "low"})
	roomboxtest.WaitStatus(t, bin, stateDir, "noise suppression low", 10*time.Second, func(s control.Status) bool {
		return s.Audio != nil && s.Audio.NoiseSuppression == control.NoiseLow
	})

	// A capture from the page: the device switches at run time, and the preview, its full
	// layer, decodes pictures of the new size (the switch starts with an IDR).
	if w != 1280 || h != 720 {
		t.Fatalf("preview %dx%d before the change, want the default 1280x720", w, h)
	}
	drv.do("selectOption", map[string]any{"page": "control", "selector": "#video-size", "value": "640x360"})
	roomboxtest.WaitStatus(t, bin, stateDir, "the camera at 640x360", 20*time.Second, func(s control.Status) bool {
		return s.Video != nil && s.Video.Width == 640 && s.Video.Height == 360 && s.Video.Settings.Width == 640
	})
	drv.do("waitText", map[string]any{"page": "control", "selector": "#video-mode", "pattern": "^640×360 at 30 fps", "timeout": 10000})
	drv.do("waitText", map[string]any{"page": "control", "selector": "#video-layers", "pattern": "f 640×360", "timeout": 10000})
	r = drv.do("video", map[string]any{"page": "control", "selector": "video#preview", "frames": 10, "width": 640, "timeout": 30000})
	r.field(t, "width", &w)
	r.field(t, "height", &h)
	if w != 640 || h != 360 {
		t.Fatalf("preview after the change: %dx%d, want 640x360", w, h)
	}

	// Mute from the page.
	if _, attrs := drv.read("control", "#led", "data-on"); attrs["data-on"] == nil || *attrs["data-on"] != "false" {
		t.Fatalf("#led data-on before muting = %v, want \"false\"", deref(attrs["data-on"]))
	}
	drv.do("click", map[string]any{"page": "control", "selector": "#mic"})
	drv.do("waitAttr", map[string]any{"page": "control", "selector": "#led", "attr": "data-on", "value": "true"})
	drv.do("waitAttr", map[string]any{"page": "control", "selector": "#mic", "attr": "aria-pressed", "value": "true"})
	st := roomboxtest.WaitStatus(t, bin, stateDir, "mic muted with the LED on", 10*time.Second, func(s control.Status) bool { return s.MicMuted && s.LED })
	t.Logf("device after the page's mute: mic_muted=%v led=%v", st.MicMuted, st.LED)
	waitMicOnServer(t, srv, room, identity, true)
	drv.do("waitText", map[string]any{"page": "control", "selector": "#meter-value", "pattern": "^silence$", "timeout": 10000})
	drv.screenshot("control", "control-page-muted")

	// And unmute from the page: a local control, like the button.
	drv.do("click", map[string]any{"page": "control", "selector": "#mic"})
	drv.do("waitAttr", map[string]any{"page": "control", "selector": "#led", "attr": "data-on", "value": "false"})
	drv.do("waitAttr", map[string]any{"page": "control", "selector": "#mic", "attr": "aria-pressed", "value": "false"})
	roomboxtest.WaitStatus(t, bin, stateDir, "mic unmuted with the LED off", 10*time.Second, func(s control.Status) bool { return !s.MicMuted && !s.LED })
	waitMicOnServer(t, srv, room, identity, false)
	drv.do("close", map[string]any{"page": "control"})
}

// bandwidthChart checks the Bandwidth chart of a page in a room: a line for the estimate and
// one for each of the camera's layers (720p: f, h, q), with their values in the legend; the
// preview keeps f sent, so its legend shows what f sends into the room.
func bandwidthChart(t *testing.T, drv *driver, page string) {
	t.Helper()
	const rate = `[0-9.]+ (kbit|Mbit)/s`
	legend := func(series string) string { return `#bandwidth-legend li[data-series="` + series + `"] span` }
	drv.do("waitText", map[string]any{"page": page, "selector": legend("estimate"), "pattern": `^[1-9]` + rate + `$`, "timeout": 30000})
	for _, rid := range []string{"f", "h", "q"} {
		drv.do("waitText", map[string]any{"page": page, "selector": legend(rid), "pattern": `^` + rate + `, (sending ` + rate + `|off)$`})
	}
	drv.do("waitAttr", map[string]any{"page": page, "selector": `#bandwidth-legend li[data-series="f"]`, "attr": "data-sent", "value": "true"})
	r := drv.do("waitText", map[string]any{"page": page, "selector": legend("f"), "pattern": `, sending [1-9]` + rate + `$`, "timeout": 10000})
	var f string
	r.field(t, "text", &f)

	r = drv.do("eval", map[string]any{"page": page, "expr": `() => charts.bandwidth.lines.map((l) => ({
		key: l.key, points: l.values.length, last: l.values[l.values.length - 1], off: l.off[l.off.length - 1]}))`})
	var lines []struct {
		Key    string
		Points int
		Last   float64
		Off    bool
	}
	r.field(t, "value", &lines)
	t.Logf("bandwidth chart: %+v; layer f: %s", lines, f)
	var keys []string
	for _, l := range lines {
		keys = append(keys, l.Key)
		if l.Points == 0 {
			t.Errorf("bandwidth line %s has no points", l.Key)
		}
	}
	if !slices.Equal(keys, []string{"estimate", "f", "h", "q"}) {
		t.Fatalf("bandwidth chart lines %v, want the estimate and layers f, h, q", keys)
	}
	if lines[0].Last <= 0 || lines[1].Last <= 0 || lines[1].Off {
		t.Errorf("bandwidth chart: estimate %v, f's target %v (off %v); want both above 0 and f drawn as sent",
			lines[0].Last, lines[1].Last, lines[1].Off)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<absent>"
	}
	return *s
}

// fleetToken makes a fleet key and signs a provisioning token with it, through the CLI
// (`roombox fleet keygen`, `roombox fleet sign`). It fails the test if the CLI refuses.
func fleetToken(t *testing.T, bin, wsURL, livekitToken, adminPassword string) string {
	t.Helper()
	keyDir := filepath.Join(t.TempDir(), "fleet")
	if err := os.Mkdir(keyDir, 0o700); err != nil { // keygen --out wants an existing dir
		t.Fatal(err)
	}
	if o, e, err := roomboxtest.CLI(bin, "fleet", "keygen", "--out", keyDir); err != nil {
		t.Fatalf("roombox fleet keygen --out %s: %v\n%s%s\n(the fleet CLI, DESIGN.md \"Provisioning token\", is needed to sign a provisioning token)", keyDir, err, o, e)
	}
	o, e, err := roomboxtest.CLI(bin, "fleet", "sign", "--key", filepath.Join(keyDir, "fleet.key"), "--url", wsURL, "--livekit-token", livekitToken, "--admin-password", adminPassword)
	if err != nil {
		t.Fatalf("roombox fleet sign: %v\n%s%s", err, o, e)
	}
	tok := strings.TrimSpace(o)
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("roombox fleet sign printed %q, want one compact JWS", tok)
	}
	return tok
}

// tamper flips one character of a compact JWS's signature.
func tamper(jws string) string {
	i := strings.LastIndexByte(jws, '.') + 1 + (len(jws)-strings.LastIndexByte(jws, '.'))/2
	b := []byte(jws)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TestProvisionFromPage: an unprovisioned device; bad tokens pasted into the page are refused
// with an error and change nothing; a signed provisioning token pasted and submitted makes
// the device join its room (the server lists it, the page shows in-room), and the admin
// password it carries replaces the setup code on the login form.
func TestProvisionFromPage(t *testing.T) {
	const room, identity = "browser-provision", "roombox-signed"
	srv := lktest.Start(t)
	bin := roomboxtest.Binary(t)
	stateDir := roomboxtest.StateDir(t)
	d := roomboxtest.Start(t, bin, stateDir)
	d.WaitHealthy(t)
	drv := startDriver(t)

	login(t, drv, d, "prov", "provision-login")
	defer drv.diagnose("prov")
	drv.do("waitText", map[string]any{"page": "prov", "selector": "#state", "pattern": "unprovisioned"})

	paste := func(token string) (ok, msg string) {
		t.Helper()
		drv.do("fill", map[string]any{"page": "prov", "selector": "textarea#provision-token", "value": token})
		// The result of an earlier paste is replaced: wait for this submit's answer.
		r := drv.do("eval", map[string]any{"page": "prov", "expr": `() => {
			const el = document.querySelector('#provision-result');
			el.removeAttribute('data-ok');
			return el.hasAttribute('data-ok') ? 'kept' : 'removed';
		}`})
		var got string
		r.field(t, "value", &got)
		if got != "removed" {
			t.Fatalf("clearing #provision-result's data-ok: %q", got)
		}
		drv.do("click", map[string]any{"page": "prov", "selector": "#provision-submit"})
		drv.do("wait", map[string]any{"page": "prov", "selector": "#provision-result[data-ok]", "state": "attached", "timeout": 30000})
		text, attrs := drv.read("prov", "#provision-result", "data-ok")
		return deref(attrs["data-ok"]), text
	}
	refused := func(what, token string) {
		t.Helper()
		ok, msg := paste(token)
		t.Logf("%s: #provision-result data-ok=%s %q", what, ok, msg)
		if ok != "false" || msg == "" {
			t.Errorf("%s: #provision-result data-ok=%s text %q, want data-ok=\"false\" and the error", what, ok, msg)
		}
		if st, err := roomboxtest.Status(bin, stateDir); err != nil || st.Provisioned {
			t.Errorf("%s changed the device: provisioned=%v (err %v)", what, st.Provisioned, err)
		}
	}

	refused("garbage pasted", "this is not a provisioning token")
	drv.screenshot("prov", "provision-refused")

	const adminPassword = "correct horse battery staple"
	tok := fleetToken(t, bin, srv.URL, lktest.Token(t, room, identity, lktest.TokenTTL(time.Hour)), adminPassword)
	refused("a signed token with a broken signature", tamper(tok))

	ok, msg := paste(tok)
	t.Logf("signed token: #provision-result data-ok=%s %q", ok, msg)
	if ok != "true" {
		t.Fatalf("signed token refused by the page: data-ok=%s %q", ok, msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.WaitParticipant(ctx, room, identity, nil); err != nil {
		t.Fatalf("LiveKit server does not list the device after provisioning from the page: %v", err)
	}
	drv.do("waitText", map[string]any{"page": "prov", "selector": "#state", "pattern": "in-room", "timeout": 30000})
	drv.do("waitText", map[string]any{"page": "prov", "selector": "#room", "pattern": regexp.QuoteMeta(room)})
	st := roomboxtest.WaitStatus(t, bin, stateDir, "provisioned and in-room", 10*time.Second, func(s control.Status) bool { return s.Provisioned && s.State == "in-room" })
	t.Logf("device: state=%s room=%s identity=%s", st.State, st.Room, st.Identity)
	drv.screenshot("prov", "provision-done")
	drv.do("close", map[string]any{"page": "prov"})

	// The token set an admin password: from now on it opens the page, the setup code does not.
	drv.do("open", map[string]any{"page": "admin", "url": d.PageURL(t)})
	drv.do("fill", map[string]any{"page": "admin", "selector": "#password", "value": d.SetupCode(t)})
	drv.do("click", map[string]any{"page": "admin", "selector": "#login"})
	r := drv.do("waitText", map[string]any{"page": "admin", "selector": "#login-error", "pattern": `\S`})
	var loginErr string
	r.field(t, "text", &loginErr)
	t.Logf("setup code after provisioning an admin password: #login-error %q", loginErr)
	drv.do("fill", map[string]any{"page": "admin", "selector": "#password", "value": adminPassword})
	drv.do("click", map[string]any{"page": "admin", "selector": "#login"})
	drv.do("waitText", map[string]any{"page": "admin", "selector": "#state", "pattern": "in-room", "timeout": 15000})
	drv.do("close", map[string]any{"page": "admin"})
}
