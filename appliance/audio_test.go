package appliance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roombox/appliance/store"
	"roombox/control"
	"roombox/fleet"
	"roombox/hal/sim"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
	"roombox/localapi"
	"roombox/media"
)

// runUnprovisioned runs the daemon on the sim board with the state dir dir until stop is
// called (or the test ends); it returns the daemon once its saved state is applied and the
// LocalAPI client once it answers.
func runUnprovisioned(t *testing.T, dir string) (d *daemon, api *localapi.Client, stop func()) {
	t.Helper()
	b, err := sim.New(simConfig(media.DefaultConfig))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *daemon, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{board: b.HAL(), StateDir: dir, HTTPAddr: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), hooks: testHooks{started: func(d *daemon) { started <- d }}})
	}()
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	select {
	case d = <-started:
	case err := <-done:
		t.Fatalf("Run returned before it started: %v", err)
	}
	api = localapi.Dial(dir)
	testwait.For(t, "the LocalAPI", 20*time.Second, func() bool {
		_, err := api.Status(context.Background())
		return err == nil
	})
	return d, api, stop
}

// applied is what the daemon's audio processor runs with.
func applied(d *daemon) control.AudioSettings {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.procSettings
}

// TestAudioSettings: a change through the LocalAPI is applied to the processor before the
// call returns, reported, persisted in state.json, and applied again after a restart; a
// change out of range is refused naming the setting and changes nothing.
func TestAudioSettings(t *testing.T) {
	dir := roomboxtest.SocketDir(t)
	d, api, stop := runUnprovisioned(t, dir)
	ctx := t.Context()
	if d.proc == nil {
		t.Fatal("the sim board's microphone has no audio processor")
	}
	if got, err := api.Audio(ctx); err != nil || got != control.DefaultAudio || applied(d) != control.DefaultAudio {
		t.Fatalf("at start: settings %+v (%v), applied %+v; want the defaults %+v", got, err, applied(d), control.DefaultAudio)
	}
	patch := control.AudioPatch{EchoCancellation: new(false), NoiseSuppression: new(control.NoiseLow), InputSensitivity: new(60)}
	want := patch.Apply(control.DefaultAudio)
	got, err := api.SetAudio(ctx, patch)
	if err != nil || got != want {
		t.Fatalf("SetAudio = %+v (%v), want %+v", got, err, want)
	}
	if applied(d) != want {
		t.Errorf("applied %+v, want %+v", applied(d), want)
	}
	if st, err := api.Status(ctx); err != nil || st.Audio == nil || *st.Audio != want {
		t.Errorf("status audio = %+v (%v), want %+v", st.Audio, err, want)
	}
	_, err = api.SetAudio(ctx, control.AudioPatch{DTX: new(true), InputGainDB: new(99.0)})
	if !errors.Is(err, control.ErrBadAudio) || !strings.Contains(err.Error(), "input_gain_db 99") {
		t.Errorf("gain 99 dB: %v, want ErrBadAudio naming input_gain_db", err)
	}
	if got, _ := api.Audio(ctx); got != want || applied(d) != want {
		t.Errorf("a refused change changed the settings: %+v, applied %+v", got, applied(d))
	}

	// The input sensitivity reaches the pipeline: the sim tone, quieter than 0 dBov, is
	// gated to silence once the hangover has passed, and heard again with the gate open.
	tone := func() bool { m := d.meter(); return m.Level < media.SilentLevel }
	testwait.For(t, "the tone on the meter", 10*time.Second, tone)
	if _, err := api.SetAudio(ctx, control.AudioPatch{InputSensitivity: new(0)}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the tone gated by sensitivity 0", 10*time.Second, func() bool { return !tone() })
	if _, err := api.SetAudio(ctx, control.AudioPatch{InputSensitivity: new(60)}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the tone through sensitivity 60", 10*time.Second, tone)
	stop()

	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := st.LoadState()
	if err != nil || !saved.Audio.Same(patch) {
		t.Fatalf("state.json holds audio %+v (%v), want %+v", saved.Audio, err, patch)
	}
	d, api, _ = runUnprovisioned(t, dir)
	if got, err := api.Audio(ctx); err != nil || got != want || applied(d) != want {
		t.Errorf("after a restart: settings %+v (%v), applied %+v; want %+v", got, err, applied(d), want)
	}
}

// TestAudioSettingsFromProvisioning: a signed token's audio claims are applied when it is;
// a change on the device afterwards wins, until the next token that sets the same field.
func TestAudioSettingsFromProvisioning(t *testing.T) {
	dir := roomboxtest.SocketDir(t)
	_, api, _ := runUnprovisioned(t, dir)
	ctx := t.Context()
	_, key, _ := ed25519.GenerateKey(nil)
	provision := func(id string, audio control.AudioPatch) {
		t.Helper()
		now := time.Now()
		tok, err := fleet.Sign(key, fleet.Claims{
			RegisteredClaims: jwt.RegisteredClaims{Subject: fleet.AnyDevice, ID: id, ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
			// Nothing listens there: the device retries its join on this host only.
			URL: "ws://127.0.0.1:1", LiveKitToken: lktest.Token(t, "lobby", "box"),
			Media: fleet.Media{Audio: audio},
		}, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := api.Provision(ctx, control.Provisioning{Signed: tok}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, want control.AudioSettings) {
		t.Helper()
		if got, err := api.Audio(ctx); err != nil || got != want {
			t.Errorf("%s: %+v (%v), want %+v", when, got, err, want)
		}
	}
	provision("1", control.AudioPatch{EchoCancellation: new(false), DTX: new(true)})
	want := control.DefaultAudio
	want.EchoCancellation, want.DTX = false, true
	check("after the first token", want)
	if _, err := api.SetAudio(ctx, control.AudioPatch{EchoCancellation: new(true)}); err != nil {
		t.Fatal(err)
	}
	want.EchoCancellation = true
	check("after a change on the device", want)
	provision("2", control.AudioPatch{NoiseSuppression: new(control.NoiseVeryHigh)})
	want.NoiseSuppression = control.NoiseVeryHigh
	check("after a token that sets another field", want)
}

// TestDaemonLoadRefusesBadAudioSettings: audio settings out of range in state.json (edited by
// hand) are dropped with a log naming the setting; the rest of the state, the mute, holds.
func TestDaemonLoadRefusesBadAudioSettings(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	state := `{"version":1,"mic_muted":true,"audio":{"dtx":true,"noise_suppression":"loud"}}`
	if err := os.WriteFile(filepath.Join(st.Dir(), store.StateFile), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := &daemon{log: slog.New(slog.NewTextHandler(&logs, nil)), store: st}
	if err := d.load(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if !d.saved.MicMuted || !d.saved.Audio.IsZero() {
		t.Errorf("saved state = %+v, want muted with no audio settings", d.saved)
	}
	if !strings.Contains(logs.String(), `noise_suppression \"loud\"`) {
		t.Errorf("log does not name the bad setting:\n%s", logs.String())
	}
}
