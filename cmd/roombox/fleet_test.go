package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"roombox/appliance/store"
	"roombox/control"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// sign runs `roombox fleet sign` with the key in keyDir and returns the token.
func signToken(t *testing.T, keyDir string, extra ...string) string {
	t.Helper()
	args := append([]string{"fleet", "sign", "--key", filepath.Join(keyDir, "fleet.key"),
		"--url", "wss://lk.example.com", "--livekit-token", mint(t, "lobby", "box-1")}, extra...)
	code, stdout, stderr := roombox(t, args...)
	if code != 0 {
		t.Fatalf("fleet sign: exit %d: %s", code, stderr)
	}
	return strings.TrimSpace(stdout)
}

func keygen(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if code, stdout, stderr := roombox(t, "fleet", "keygen", "--out", dir); code != 0 || !strings.Contains(stdout, "fleet key ") {
		t.Fatalf("fleet keygen: exit %d: %s%s", code, stdout, stderr)
	}
	return dir
}

// A signed provisioning token applied through the CLI with no daemon running: the first
// token pins its key; a token signed by another key, an expired one, a replayed one and an
// older one are refused with distinct messages, and the stored config stays byte-identical.
func TestFleetProvisioning(t *testing.T) {
	fleetA, fleetB := keygen(t), keygen(t)
	dir := shortDir(t)
	noImageKey := "--fleet-key=" + filepath.Join(t.TempDir(), "none.pub") // explicit and absent: an error
	if code, _, stderr := roombox(t, "provision", "--state-dir", dir, noImageKey, signToken(t, fleetA)); code != 1 || !strings.Contains(stderr, "no such file") {
		t.Fatalf("missing explicit fleet key: exit %d: %s", code, stderr)
	}
	tofu := "--fleet-key=" // no key pinned by the image: trust on first use

	older := signToken(t, fleetA, "--id", "older") // signed first: issued no later than the next
	time.Sleep(1100 * time.Millisecond)            // iat has one-second resolution
	first := signToken(t, fleetA, "--id", "first", "--name", "Room 4.12", "--admin-password", "hunter22", "--video-bitrate", "600000",
		"--audio", `{"echo_cancellation":false,"input_sensitivity":70}`, "--video", `{"width":1920,"height":1080,"fps":25}`)
	code, stdout, stderr := roombox(t, "provision", "--state-dir", dir, tofu, first)
	if code != 0 || !strings.Contains(stdout, `room "lobby" as "box-1" on wss://lk.example.com`) {
		t.Fatalf("provision: exit %d: %s%s", code, stdout, stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, store.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg store.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "Room 4.12" || cfg.Media.VideoBitrate != 600_000 || len(cfg.Fleet.Key) == 0 || cfg.Fleet.Applied[0] != "first" {
		t.Fatalf("stored config %+v", cfg)
	}
	// The token's audio settings are the device's: in state.json, where the daemon reads them.
	stored, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := stored.LoadState()
	if err != nil || !saved.Audio.Same(control.AudioPatch{EchoCancellation: new(false), InputSensitivity: new(70)}) {
		t.Fatalf("state.json audio %+v (%v), want the token's", saved.Audio, err)
	}
	if !saved.Video.Same(control.VideoPatch{Width: new(1920), Height: new(1080), FPS: new(25)}) {
		t.Fatalf("state.json video %+v, want the token's", saved.Video)
	}
	if bcrypt.CompareHashAndPassword([]byte(cfg.AdminPasswordHash), []byte("hunter22")) != nil {
		t.Fatal("admin password hash does not match the password signed")
	}
	if strings.Contains(string(data), "hunter22") {
		t.Fatal("the admin password is stored in clear")
	}

	for _, tc := range []struct {
		name, token, want string
	}{
		{"another key", signToken(t, fleetB), "signed by an untrusted key: signed by fleet key "},
		{"expired", signToken(t, fleetA, "--ttl", "1ns"), "provisioning token expired at "},
		{"replayed", first, `already applied (replayed): id "first"`},
		{"older", older, "older than the current provisioning: issued "},
		{"other device", signToken(t, fleetA, "--device", "rb-someoneelse"), `is for another device: for "rb-someoneelse", this is "rb-`},
		{"tampered", first[:len(first)-4] + "AAAA", "signature does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := roombox(t, "provision", "--state-dir", dir, tofu, tc.token)
			if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 saying %q", code, stdout, stderr, tc.want)
			}
			after, err := os.ReadFile(filepath.Join(dir, store.ConfigFile))
			if err != nil || string(after) != string(data) {
				t.Fatalf("stored config changed by a refused token (%v)", err)
			}
		})
	}

	// The pinned key's next token is applied.
	if code, _, stderr := roombox(t, "provision", "--state-dir", dir, tofu, signToken(t, fleetA, "--id", "second")); code != 0 {
		t.Fatalf("second token from the pinned key: exit %d: %s", code, stderr)
	}
	// An image key pins from outside: fleet B's token is accepted only when B's key is given.
	imageB := "--fleet-key=" + filepath.Join(fleetB, "fleet.pub")
	if code, _, stderr := roombox(t, "provision", "--state-dir", shortDir(t), imageB, signToken(t, fleetA)); code != 1 || !strings.Contains(stderr, "untrusted key") {
		t.Fatalf("token of A on an image pinned to B: exit %d: %s", code, stderr)
	}
	if code, _, stderr := roombox(t, "provision", "--state-dir", shortDir(t), imageB, signToken(t, fleetB)); code != 0 {
		t.Fatalf("token of B on an image pinned to B: exit %d: %s", code, stderr)
	}
}

func TestFleetSignBadInput(t *testing.T) {
	keys := keygen(t)
	key := filepath.Join(keys, "fleet.key")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no key", []string{"--url", "wss://h", "--livekit-token", "a.b.c"}, 2, "--key is required"},
		{"no url", []string{"--key", key, "--livekit-token", "a.b.c"}, 2, "--url is required"},
		{"no room token", []string{"--key", key, "--url", "wss://h"}, 1, "want exactly one of livekit_token and token_endpoint"},
		{"endpoint without credential", []string{"--key", key, "--url", "wss://h", "--token-endpoint", "https://fleet.example.com/token"}, 1, "token_endpoint without a credential"},
		{"public key as private", []string{"--key", filepath.Join(keys, "fleet.pub"), "--url", "wss://h", "--livekit-token", "a.b.c"}, 1, `PEM block is "PUBLIC KEY", want "PRIVATE KEY"`},
		{"keygen over existing", nil, 1, "not overwriting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"fleet", "sign"}, tc.args...)
			if tc.args == nil {
				args = []string{"fleet", "keygen", "--out", keys}
			}
			code, _, stderr := roombox(t, args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d saying %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}
