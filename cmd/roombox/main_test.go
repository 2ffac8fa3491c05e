package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"roombox/appliance"
	"roombox/appliance/provision"
	"roombox/appliance/store"
	"roombox/control"
	"roombox/localapi"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"

	"roombox/control/controltest"
)

// roombox runs the CLI in-process and returns its exit status and output.
func roombox(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = report(run(ctx, args, &out, &errb), &errb)
	return code, out.String(), errb.String()
}

func mint(t *testing.T, room, identity string) string {
	t.Helper()
	tok, err := auth.NewAccessToken("devkey", "secret").
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: room}).
		SetIdentity(identity).
		SetValidFor(time.Hour).
		ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// shortDir is a temporary directory with a path short enough for a unix socket.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rbc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// provisionedDir returns a state dir holding a valid stored config, and that config's bytes.
func provisionedDir(t *testing.T) (string, []byte) {
	t.Helper()
	dir := filepath.Join(shortDir(t), "state")
	code, _, stderr := roombox(t, "provision", "--state-dir", dir, "--url", "wss://old.example.com", "--token", mint(t, "old-room", "box"))
	if code != 0 {
		t.Fatalf("initial provision: exit %d: %s", code, stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, store.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	return dir, data
}

func TestProvisionBadInput(t *testing.T) {
	good := mint(t, "lobby", "box-1")
	tests := []struct {
		name string
		args []string // after "provision --state-dir DIR"
		code int
		want string
	}{
		{"malformed token", []string{"--url", "wss://lk.example.com", "--token", "garbage"}, 1, "provisioning token: not a JWT"},
		{"broken token", []string{"--url", "wss://lk.example.com", "--token", "aaa.bbb.ccc"}, 1, "provisioning token: malformed"},
		{"token without room", []string{"--url", "wss://lk.example.com", "--token", mint(t, "", "box")}, 1, "names no room"},
		{"http url", []string{"--url", "http://lk.example.com", "--token", good}, 1, `provisioning url "http://lk.example.com": scheme must be ws or wss`},
		{"signed token garbage", []string{"PROVISIONING-TOKEN"}, 1, "provisioning signed token: refused: fleet: malformed provisioning token: not a JWS"},
		{"signed token and url", []string{"a.b.c", "--url", "wss://lk.example.com"}, 2, "not both"},
		{"no token", []string{"--url", "wss://lk.example.com"}, 2, "--token is required"},
		{"no url", []string{"--token", good}, 2, "--url is required"},
		{"two positionals", []string{"a", "b"}, 2, "want one PROVISIONING_TOKEN, got 2 arguments"},
		{"unknown flag", []string{"--room", "x"}, 2, "flag provided but not defined: -room"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, before := provisionedDir(t)
			code, stdout, stderr := roombox(t, append([]string{"provision", "--state-dir", dir}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if !strings.HasPrefix(stderr, "roombox: ") || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want a message containing %q", stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			after, err := os.ReadFile(filepath.Join(dir, store.ConfigFile))
			if err != nil || !bytes.Equal(before, after) {
				t.Errorf("config.json changed (%v):\n%s\n->\n%s", err, before, after)
			}
		})
	}
}

func TestProvisionUnusableStateDir(t *testing.T) {
	root := shortDir(t)
	file := filepath.Join(root, "a-file")
	if err := os.WriteFile(file, []byte("not a dir\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dir, want string }{
		{"a file", file, `state dir "` + file + `": not a directory`},
		{"under a file", filepath.Join(file, "state"), `not a directory`},
		{"missing parent", filepath.Join(root, "missing", "state"), `parent directory "` + filepath.Join(root, "missing") + `" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := roombox(t, "provision", "--state-dir", tt.dir, "--url", "wss://h", "--token", mint(t, "lobby", "box"))
			if code != 1 || !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, tt.dir) {
				t.Errorf("exit %d, stderr %q; want 1 and a message naming %s and containing %q", code, stderr, tt.dir, tt.want)
			}
		})
	}
	if data, _ := os.ReadFile(file); string(data) != "not a dir\n" {
		t.Errorf("the file given as state dir changed: %q", data)
	}
	if _, err := os.Stat(filepath.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("provision created the missing parent")
	}
}

func TestProvisionUnwritableStateDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: directory permissions do not deny root (the unreachable cases are in TestProvisionUnusableStateDir)")
	}
	dir, before := provisionedDir(t)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	code, _, stderr := roombox(t, "provision", "--state-dir", dir, "--url", "wss://new", "--token", mint(t, "new", "box"))
	if code != 1 || !strings.Contains(stderr, "permission denied") || !strings.Contains(stderr, dir) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, store.ConfigFile))
	if !bytes.Equal(before, after) {
		t.Error("config.json changed")
	}
}

func TestProvisionStoresWithoutDaemon(t *testing.T) {
	dir := filepath.Join(shortDir(t), "state") // created by provision, parent exists
	tok := mint(t, "lobby", "box-1")
	code, stdout, stderr := roombox(t, "provision", "--state-dir", dir, "--url", " wss://lk.example.com\n", "--token", tok+"\n")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `room "lobby" as "box-1"`) || !strings.Contains(stdout, "not running") {
		t.Errorf("stdout = %q", stdout)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v %v, want mode 0700", fi, err)
	}
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.LoadConfig()
	if err != nil || c.URL != "wss://lk.example.com" || c.Token != tok || c.Version != 1 {
		t.Errorf("stored config = %+v, %v", c, err)
	}
}

func TestClientVerbsWithoutDaemon(t *testing.T) {
	dir := shortDir(t)
	want := "roombox: daemon not running (no LocalAPI socket at " + filepath.Join(dir, localapi.SocketFile) + ")\n"
	for _, args := range [][]string{{"status"}, {"mute"}, {"unmute"}, {"press", "mic"}, {"audio"}, {"audio", "--dtx", "on"}, {"video"}, {"video", "--fps", "15"}} {
		code, stdout, stderr := roombox(t, append(args, "--state-dir", dir)...)
		if code != 1 || stderr != want || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and %q", args, code, stdout, stderr, want)
		}
	}
}

func TestProvisionStatusRoundTrip(t *testing.T) {
	dir := shortDir(t)
	fake := &controltest.Controller{Hal: "sim"}
	controltest.ServeLocalAPI(t, dir, fake)

	code, stdout, stderr := roombox(t, "status", "--state-dir", dir)
	if code != 0 || !strings.Contains(stdout, `"state": "unprovisioned"`) {
		t.Fatalf("status before: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// Through the daemon, which validates the same way.
	code, _, stderr = roombox(t, "provision", "--state-dir", dir, "--url", "ws://127.0.0.1:7880", "--token", "nope")
	if code != 1 || !strings.Contains(stderr, "not a JWT") {
		t.Errorf("bad provision: exit %d, stderr %q", code, stderr)
	}
	tok := mint(t, "lobby", "box-1")
	code, stdout, stderr = roombox(t, "provision", "--state-dir", dir, "--url", "ws://127.0.0.1:7880", "--token", tok)
	if code != 0 || !strings.Contains(stdout, "through the running daemon") {
		t.Fatalf("provision: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if p := fake.Provisioning(); p != (control.Provisioning{URL: "ws://127.0.0.1:7880", Token: tok}) {
		t.Errorf("daemon got %+v", p)
	}
	if _, err := os.Stat(filepath.Join(dir, store.ConfigFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the CLI wrote config.json itself while the daemon was running")
	}

	code, stdout, stderr = roombox(t, "status", "--state-dir", dir)
	if code != 0 {
		t.Fatalf("status: exit %d, stderr %q", code, stderr)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("status output is not JSON: %v\n%s", err, stdout)
	}
	want := control.Status{State: "connecting", Provisioned: true, URL: "ws://127.0.0.1:7880", Room: "lobby", Identity: "box-1", Hal: "sim",
		Audio: new(control.DefaultAudio), Video: &control.VideoStatus{Settings: control.DefaultVideo, Width: 1280, Height: 720, FPS: 30}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("status = %+v, want %+v", st, want)
	}
	if !strings.Contains(stdout, "\n  \"state\": \"connecting\",\n") {
		t.Errorf("status is not indented JSON:\n%s", stdout)
	}

	// mute, unmute, press with the flag on either side of the button. A mic press toggles
	// mute, as the button does, so it comes after unmute.
	for _, args := range [][]string{
		{"mute", "--state-dir", dir},
		{"press", "--state-dir", dir, "camera"},
	} {
		if code, _, stderr := roombox(t, args...); code != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	if !fake.MicMuted() || strings.Join(fake.Presses(), ",") != "camera" {
		t.Errorf("muted=%v presses=%v", fake.MicMuted(), fake.Presses())
	}
	if code, _, _ := roombox(t, "unmute", "--state-dir", dir); code != 0 || fake.MicMuted() {
		t.Error("unmute failed")
	}
	if code, _, stderr := roombox(t, "press", "mic", "--state-dir", dir); code != 0 {
		t.Errorf("press mic: exit %d, stderr %q", code, stderr)
	}
	if !fake.MicMuted() || strings.Join(fake.Presses(), ",") != "camera,mic" {
		t.Errorf("muted=%v presses=%v", fake.MicMuted(), fake.Presses())
	}
	code, _, stderr = roombox(t, "press", "eject", "--state-dir", dir)
	if code != 1 || !strings.Contains(stderr, `unknown button "eject"`) {
		t.Errorf("press eject: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = roombox(t, "press", "--state-dir", dir)
	if code != 2 || !strings.Contains(stderr, "want one BUTTON") {
		t.Errorf("press without a button: exit %d, stderr %q", code, stderr)
	}
}

// TestAudioVerb: roombox audio prints the settings, changes those its flags give (and only
// those), and refuses a bad value before reaching the daemon, naming the setting.
func TestAudioVerb(t *testing.T) {
	dir := shortDir(t)
	fake := &controltest.Controller{}
	controltest.ServeLocalAPI(t, dir, fake)
	audio := func(args ...string) control.AudioSettings {
		t.Helper()
		code, stdout, stderr := roombox(t, append([]string{"audio", "--state-dir", dir}, args...)...)
		if code != 0 {
			t.Fatalf("audio %v: exit %d, stderr %q", args, code, stderr)
		}
		var s control.AudioSettings
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatalf("audio %v: output is not JSON: %v\n%s", args, err, stdout)
		}
		return s
	}
	if got := audio(); got != control.DefaultAudio {
		t.Errorf("audio = %+v, want the defaults %+v", got, control.DefaultAudio)
	}
	want := control.DefaultAudio
	want.EchoCancellation, want.NoiseSuppression, want.InputGainDB, want.DTX = false, control.NoiseLow, -6.5, true
	if got := audio("--echo-cancellation", "off", "--noise-suppression", "low", "--input-gain", "-6.5", "--dtx", "on"); got != want {
		t.Errorf("after the change: %+v, want %+v", got, want)
	}
	want.InputSensitivity = 50
	if got := audio("--input-sensitivity", "50"); got != want {
		t.Errorf("a second change kept the first one? %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--echo-cancellation", "maybe"}, `"maybe": want on or off`},
		{[]string{"--noise-suppression", "loud"}, `noise_suppression "loud"`},
		{[]string{"--input-gain", "40"}, "input_gain_db 40 (want -20 to 30)"},
		{[]string{"--input-sensitivity", "-1"}, "input_sensitivity -1 (want 0 to 127)"},
		{[]string{"--input-gain", "x"}, `invalid value "x"`},
		{[]string{"extra"}, "extra"},
	} {
		code, _, stderr := roombox(t, append([]string{"audio", "--state-dir", dir}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("audio %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.msg)
		}
	}
	if got := audio(); got != want {
		t.Errorf("refused changes changed the settings: %+v, want %+v", got, want)
	}
}

// TestVideoVerb: roombox video prints the capture, changes what its flags give (and only
// that), and refuses a bad value before reaching the daemon, naming the setting.
func TestVideoVerb(t *testing.T) {
	dir := shortDir(t)
	fake := &controltest.Controller{}
	controltest.ServeLocalAPI(t, dir, fake)
	video := func(args ...string) control.VideoSettings {
		t.Helper()
		code, stdout, stderr := roombox(t, append([]string{"video", "--state-dir", dir}, args...)...)
		if code != 0 {
			t.Fatalf("video %v: exit %d, stderr %q", args, code, stderr)
		}
		var s control.VideoStatus
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatalf("video %v: output is not JSON: %v\n%s", args, err, stdout)
		}
		return s.Settings
	}
	if got := video(); got != control.DefaultVideo {
		t.Errorf("video = %+v, want the defaults %+v", got, control.DefaultVideo)
	}
	want := control.VideoSettings{Width: 1920, Height: 1080, FPS: 30}
	if got := video("--size", "1920x1080"); got != want {
		t.Errorf("after the change: %+v, want %+v", got, want)
	}
	want.FPS = 15
	if got := video("--fps", "15"); got != want {
		t.Errorf("a second change kept the first one? %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--size", "1280"}, `size "1280": want WIDTHxHEIGHT`},
		{[]string{"--size", "1281x720"}, "width 1281 (want an even number from 64 to 1920)"},
		{[]string{"--size", "3840x2160"}, "width 3840"},
		{[]string{"--fps", "0"}, "fps 0 (want 1 to 60)"},
		{[]string{"--fps", "x"}, `invalid value "x"`},
		{[]string{"extra"}, "extra"},
	} {
		code, _, stderr := roombox(t, append([]string{"video", "--state-dir", dir}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("video %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.msg)
		}
	}
	if got := video(); got != want {
		t.Errorf("refused changes changed the settings: %+v, want %+v", got, want)
	}
}

func TestToken(t *testing.T) {
	code, stdout, stderr := roombox(t, "token", "--api-key", "devkey", "--api-secret", "secret", "--room", "lobby", "--identity", "box-1", "--ttl", "2h", "--name", "Lobby box")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	tok := strings.TrimSuffix(stdout, "\n")
	v, err := auth.ParseAPIToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	claims, grants, err := v.Verify("secret")
	if err != nil {
		t.Fatalf("token does not verify with the secret: %v", err)
	}
	if v.APIKey() != "devkey" || v.Identity() != "box-1" || grants.Name != "Lobby box" {
		t.Errorf("key %q identity %q name %q", v.APIKey(), v.Identity(), grants.Name)
	}
	g := grants.Video
	if g == nil || !g.RoomJoin || g.Room != "lobby" || !g.GetCanPublish() || !g.GetCanSubscribe() || !g.GetCanPublishData() {
		t.Errorf("video grant = %+v", g)
	}
	if d := time.Until(claims.ExpiresAt.Time); d < 119*time.Minute || d > 121*time.Minute {
		t.Errorf("expires in %v, want 2h", d)
	}
	if _, err := provision.Validate(control.Provisioning{URL: "ws://127.0.0.1:7880", Token: tok}, time.Now()); err != nil {
		t.Errorf("a minted token does not provision: %v", err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--api-secret", "s", "--room", "r", "--identity", "i"}, "--api-key is required"},
		{[]string{"--api-key", "k", "--room", "r", "--identity", "i"}, "--api-secret is required"},
		{[]string{"--api-key", "k", "--api-secret", "s", "--identity", "i"}, "--room is required"},
		{[]string{"--api-key", "k", "--api-secret", "s", "--room", "r"}, "--identity is required"},
		{[]string{"--api-key", "k", "--api-secret", "s", "--room", "r", "--identity", "i", "--ttl", "-1h"}, "must be positive"},
		{[]string{"--api-key", "k", "--api-secret", "s", "--room", "r", "--identity", "i", "--ttl", "soon"}, "invalid value"},
	} {
		code, stdout, stderr := roombox(t, append([]string{"token"}, tt.args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "usage: roombox token") {
			t.Errorf("token %v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}} {
		code, _, stderr := roombox(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		for _, v := range []string{"run", "provision", "status", "mute", "unmute", "press", "token"} {
			if !strings.Contains(stderr, "\n  "+v+" ") {
				t.Errorf("%v: usage does not list %q:\n%s", args, v, stderr)
			}
		}
	}
	if _, _, stderr := roombox(t, "frobnicate"); !strings.HasPrefix(stderr, `roombox: unknown verb "frobnicate"`) {
		t.Errorf("stderr = %q", stderr)
	}
	if code, stdout, _ := roombox(t, "help"); code != 0 || !strings.Contains(stdout, "usage: roombox VERB") {
		t.Errorf("help: exit %d, stdout %q", code, stdout)
	}
	if code, _, stderr := roombox(t, "status", "-h"); code != 0 || !strings.Contains(stderr, "usage: roombox status") {
		t.Errorf("status -h: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := roombox(t, "status", "extra"); code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Errorf("status extra: exit %d, stderr %q", code, stderr)
	}
}

func TestRunVerb(t *testing.T) {
	if defaultHal("amd64") != "sim" || defaultHal("arm64") != "linux" || defaultHal("arm") != "linux" {
		t.Error("defaultHal")
	}
	var got appliance.Options
	orig := runDaemon
	runDaemon = func(ctx context.Context, o appliance.Options) error {
		got = o
		o.Logger.Info("hello")
		return context.Canceled // as after SIGTERM
	}
	defer func() { runDaemon = orig }()

	dir := filepath.Join(shortDir(t), "a", "state")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"run", "--hal", "sim", "--state-dir", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v", err)
	}
	if got.Hal != "sim" || got.StateDir != dir || got.HTTPAddr != "127.0.0.1:8080" || got.Logger == nil {
		t.Errorf("Options = %+v", got)
	}
	if !strings.Contains(stderr.String(), "level=INFO msg=hello") {
		t.Errorf("log is not slog text on stderr: %q", stderr.String())
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir not created 0700: %v %v", fi, err)
	}

	if err := run(ctx, []string{"run", "--hal", "linux", "--state-dir", dir}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if got.Hal != "linux" || got.HTTPAddr != ":80" {
		t.Errorf("linux defaults: %+v", got)
	}
	if err := run(ctx, []string{"run", "--state-dir", dir, "--http", "127.0.0.1:9999"}, &stdout, &stderr); err != nil || got.HTTPAddr != "127.0.0.1:9999" {
		t.Errorf("--http: %+v, %v", got, err)
	}

	code, _, stderr2 := roombox(t, "run", "--hal", "pi5", "--state-dir", dir)
	if code != 2 || !strings.Contains(stderr2, `--hal "pi5": want sim or linux`) {
		t.Errorf("bad --hal: exit %d, stderr %q", code, stderr2)
	}

	// The simulated microphone and room: passed on, refused with a real board, a room
	// described wrongly refused with what is wrong.
	if err := run(ctx, []string{"run", "--hal", "sim", "--state-dir", dir, "--sim-mic", "talk.wav", "--sim-room", "delay=80ms,coupling=-3"},
		&stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if got.SimMic != "talk.wav" || got.SimRoom == nil || got.SimRoom.Delay != 80*time.Millisecond || got.SimRoom.CouplingDB != -3 {
		t.Errorf("--sim-mic, --sim-room: %+v", got)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--hal", "linux", "--sim-mic", "talk.wav"}, "--sim-mic and --sim-room need --hal sim"},
		{[]string{"--sim-room", "delay=2s"}, "--sim-room: acoustic: room \"delay=2s\": acoustic: delay 2s out of range"},
		{[]string{"--sim-room", "echo=loud"}, `unknown key "echo"`},
	} {
		code, _, stderr := roombox(t, append([]string{"run", "--state-dir", dir}, tt.args...)...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("run %v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestVersion: the version verb and --version print the version the Makefile stamps with
// -ldflags -X (the Makefile checks the built binaries print git describe's); extra arguments
// are a usage error.
func TestVersion(t *testing.T) {
	orig := version
	version = "v1.2.3-4-gabcdef0-dirty"
	defer func() { version = orig }()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if code, stdout, _ := roombox(t, args...); code != 0 || stdout != "roombox v1.2.3-4-gabcdef0-dirty\n" {
			t.Errorf("%v: exit %d, stdout %q", args, code, stdout)
		}
	}
	if code, _, stderr := roombox(t, "version", "extra"); code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Errorf("version extra: exit %d, stderr %q", code, stderr)
	}
}
