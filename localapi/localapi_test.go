package localapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roombox/appliance/provision"
	"roombox/control"
	"roombox/control/controltest"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/localapi"
)

// socketDir returns a fresh directory with a short path: unix socket paths are limited to
// about 100 bytes, and t.TempDir's can be longer.
func TestLocalAPIClientRoundTrip(t *testing.T) {
	dir := roomboxtest.SocketDir(t)
	fake := &controltest.Controller{}
	controltest.ServeLocalAPI(t, dir, fake)
	ctx := context.Background()
	cl := localapi.Dial(dir)

	fi, err := os.Lstat(localapi.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a 0600 socket", fi.Mode())
	}

	if err := cl.SetMuted(ctx, control.TargetMic, true); err != nil {
		t.Fatal(err)
	}
	st, err := cl.Status(ctx)
	if err != nil || !st.MicMuted || !st.LED || st.Hal != "fake" {
		t.Fatalf("Status after mute = %+v, %v", st, err)
	}
	if err := cl.SetMuted(ctx, control.TargetMic, false); err != nil {
		t.Fatal(err)
	}
	if st, _ := cl.Status(ctx); st.MicMuted {
		t.Error("still muted after unmute")
	}

	if err := cl.Press(ctx, "mic"); err != nil {
		t.Fatal(err)
	}
	if st, _ := cl.Status(ctx); !st.MicMuted {
		t.Error("mic press did not toggle mute")
	}

	err = cl.Press(ctx, "self-destruct")
	if !errors.Is(err, control.ErrUnknownButton) || !strings.Contains(err.Error(), `unknown button "self-destruct"`) {
		t.Errorf("Press(unknown) = %v", err)
	}
	var ae *localapi.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest {
		t.Errorf("Press(unknown) = %#v, want a 400 APIError", err)
	}

	tok := lktest.Token(t, "lobby", "box")
	err = cl.Provision(ctx, control.Provisioning{URL: "http://x", Token: tok})
	if !errors.Is(err, provision.ErrInvalidProvisioning) || err.Error() != `provision: invalid provisioning url "http://x": scheme must be ws or wss` {
		t.Errorf("Provision(http) = %v", err)
	}
	if fake.Provisioning() != (control.Provisioning{}) {
		t.Fatal("invalid provisioning reached the controller")
	}
	if err := cl.Provision(ctx, control.Provisioning{URL: "wss://lk.example.com", Token: tok}); err != nil {
		t.Fatal(err)
	}
	if fake.Provisioning().Token != tok {
		t.Error("controller did not get the provisioning")
	}
	if st, _ := cl.Status(ctx); !st.Provisioned || st.URL != "wss://lk.example.com" {
		t.Errorf("Status after provisioning = %+v", st)
	}
	if fmt.Sprint(fake.Presses()) != "[mic]" {
		t.Errorf("presses = %v", fake.Presses())
	}
}

func TestLocalAPIControllerError(t *testing.T) {
	dir := roomboxtest.SocketDir(t)
	controltest.ServeLocalAPI(t, dir, &controltest.Controller{PressErr: errors.New("sim: button stuck")})
	err := localapi.Dial(dir).Press(context.Background(), "camera")
	var ae *localapi.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusInternalServerError || ae.Message != "sim: button stuck" {
		t.Errorf("Press = %#v, want a 500 carrying the controller's message", err)
	}
}

// rawRequest sends a request on the socket and returns the status and body.
func rawRequest(t *testing.T, dir, method, path, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", localapi.SocketPath(dir))
		},
	}}
	req, err := http.NewRequest(method, "http://roombox"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, string(data)
}

func TestLocalAPIBadRequests(t *testing.T) {
	dir := roomboxtest.SocketDir(t)
	fake := &controltest.Controller{}
	controltest.ServeLocalAPI(t, dir, fake)
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"bad JSON", "POST", "/v1/press", `{"button":`, 400, `bad JSON`},
		{"unknown field", "POST", "/v1/press", `{"button":"mic","force":true}`, 400, `unknown field \"force\"`},
		{"trailing data", "POST", "/v1/press", `{"button":"mic"} {}`, 400, `data after the object`},
		{"empty press", "POST", "/v1/press", ``, 400, `empty request body`},
		{"no button", "POST", "/v1/press", `{}`, 400, `unknown button: no button named`},
		{"unknown button", "POST", "/v1/press", `{"button":"eject"}`, 400, `unknown button \"eject\"`},
		{"huge body", "POST", "/v1/provision", `{"url":"wss://h","token":"` + strings.Repeat("a", 100<<10) + `"}`, 400, `request body larger than`},
		{"provision unknown field", "POST", "/v1/provision", `{"url":"wss://h","token":"a.b.c","room":"x"}`, 400, `unknown field`},
		{"provision bad token", "POST", "/v1/provision", `{"url":"wss://h","token":"nope"}`, 400, `provision: invalid provisioning token: not a JWT`},
		{"provision bad url", "POST", "/v1/provision", `{"url":"http://x","token":"a.b.c"}`, 400, `provision: invalid provisioning url \"http://x\": scheme must be ws or wss`},
		{"mute with fields", "POST", "/v1/mute", `{"muted":true}`, 400, `unknown field`},
		{"wrong method", "GET", "/v1/mute", ``, 405, `method not allowed (use POST)`},
		{"status by POST", "POST", "/v1/status", ``, 405, `method not allowed (use GET)`},
		{"unknown path", "GET", "/v2/status", ``, 404, `no endpoint /v2/status`},
		{"audio empty", "POST", "/v1/audio", `{}`, 400, `audio: no setting given`},
		{"audio unknown field", "POST", "/v1/audio", `{"aec":false}`, 400, `unknown field \"aec\"`},
		{"audio wrong type", "POST", "/v1/audio", `{"echo_cancellation":"off"}`, 400, `bad JSON`},
		{"audio bad level", "POST", "/v1/audio", `{"noise_suppression":"max"}`, 400, `bad audio setting: noise_suppression \"max\"`},
		{"audio bad gain", "POST", "/v1/audio", `{"dtx":true,"input_gain_db":31}`, 400, `input_gain_db 31 (want -20 to 30)`},
		{"audio by PUT", "PUT", "/v1/audio", `{"dtx":true}`, 405, `method not allowed (use GET or POST)`},
		{"video empty", "POST", "/v1/video", `{}`, 400, `video: no setting given`},
		{"video width alone", "POST", "/v1/video", `{"width":1920}`, 400, `bad video setting: width and height go together`},
		{"video odd height", "POST", "/v1/video", `{"width":1920,"height":1081}`, 400, `height 1081 (want an even number from 64 to 1088)`},
		{"video fps", "POST", "/v1/video", `{"fps":120}`, 400, `fps 120 (want 1 to 60)`},
		{"video unknown field", "POST", "/v1/video", `{"size":"1280x720"}`, 400, `unknown field \"size\"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := rawRequest(t, dir, tt.method, tt.path, tt.body)
			if code != tt.code || !strings.Contains(body, tt.want) || !strings.HasPrefix(body, `{"error":"`) {
				t.Errorf("%s %s = %d %s, want %d with an error containing %s", tt.method, tt.path, code, body, tt.code, tt.want)
			}
		})
	}
	if fake.MicMuted() || len(fake.Presses()) != 0 || fake.Provisioning() != (control.Provisioning{}) ||
		*fake.Status(t.Context()).Audio != control.DefaultAudio {
		t.Errorf("bad requests reached the controller: muted=%v presses=%v provisioning=%+v audio=%+v",
			fake.MicMuted(), fake.Presses(), fake.Provisioning(), *fake.Status(t.Context()).Audio)
	}
	// An empty body is fine for mute.
	if code, body := rawRequest(t, dir, "POST", "/v1/mute", ""); code != 200 || !strings.Contains(body, `"mic_muted":true`) {
		t.Errorf("POST /v1/mute = %d %s", code, body)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	dir := roomboxtest.SocketDir(t)
	ctx := context.Background()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)

	for _, d := range []string{dir, filepath.Join(dir, "missing"), file} {
		_, err := localapi.Dial(d).Status(ctx)
		if !errors.Is(err, localapi.ErrDaemonNotRunning) {
			t.Errorf("Status with no daemon in %s = %v, want ErrDaemonNotRunning", d, err)
			continue
		}
		if !strings.Contains(err.Error(), localapi.SocketPath(d)) {
			t.Errorf("error %q does not name the socket", err)
		}
	}

	// A stale socket: bound, then its owner gone without removing it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: localapi.SocketPath(dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(localapi.SocketPath(dir)); err != nil {
		t.Fatal(err)
	}
	if err := localapi.Dial(dir).SetMuted(ctx, control.TargetMic, true); !errors.Is(err, localapi.ErrDaemonNotRunning) {
		t.Errorf("SetMuted on a stale socket = %v, want ErrDaemonNotRunning", err)
	}
	// ServeLocalAPI takes the stale socket over.
	controltest.ServeLocalAPI(t, dir, &controltest.Controller{})
	if err := localapi.Dial(dir).SetMuted(ctx, control.TargetMic, true); err != nil {
		t.Errorf("after takeover: %v", err)
	}
}

func TestServeLocalAPIRefusesSecondDaemon(t *testing.T) {
	dir := roomboxtest.SocketDir(t)
	controltest.ServeLocalAPI(t, dir, &controltest.Controller{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := localapi.Serve(ctx, dir, &controltest.Controller{}, nil)
	if !errors.Is(err, localapi.ErrDaemonRunning) {
		t.Fatalf("second ServeLocalAPI = %v, want ErrDaemonRunning", err)
	}
	// The first daemon's socket is untouched.
	if _, err := localapi.Dial(dir).Status(ctx); err != nil {
		t.Errorf("first daemon no longer answers: %v", err)
	}
}

func TestServeLocalAPIRefusesNonSocket(t *testing.T) {
	dir := roomboxtest.SocketDir(t)
	path := localapi.SocketPath(dir)
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := localapi.Serve(context.Background(), dir, &controltest.Controller{}, nil)
	if err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("ServeLocalAPI over a regular file = %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "precious" {
		t.Error("regular file at the socket path was replaced")
	}
}

func TestServeLocalAPIMissingDir(t *testing.T) {
	err := localapi.Serve(context.Background(), filepath.Join(roomboxtest.SocketDir(t), "missing"), &controltest.Controller{}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "localapi: listen on ") {
		t.Fatalf("ServeLocalAPI in a missing dir = %v", err)
	}
}
