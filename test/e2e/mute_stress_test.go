package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"roombox/appliance/store"
	"roombox/control"
	"roombox/localapi"
	"strings"
	"sync"
	"testing"
	"time"

	"roombox/hal/sim"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/previewtest"
	"roombox/internal/testkit/testwait"
)

const (
	stressClients = 8 // half over the LocalAPI, half over the control page
	stressRounds  = 200
)

// Eight clients race mic mutes and unmutes at the real binary, half over the LocalAPI and
// half over the control page's JSON API, in rounds: each round all eight fire at once, each
// with its own random value. After each round the five places a mute shows agree: Status
// (MicMuted and LED), state.json, the server's track, and what leaves the device (the
// preview, decoded): after a round ending muted no audio packet from the mute budget on
// carries the tone; after one ending unmuted the tone is back.
func TestMuteStress(t *testing.T) {
	srv := lktest.Start(t)
	_, stateDir, d := provisionedDevice(t, srv)
	base, code := strings.TrimSuffix(d.PageURL(t), "/"), d.SetupCode(t)
	ctx := context.Background()
	setters := make([]func(context.Context, bool) error, stressClients)
	for i := range setters {
		if i%2 == 0 {
			api := localapi.Dial(stateDir)
			setters[i] = func(ctx context.Context, muted bool) error { return api.SetMuted(ctx, control.TargetMic, muted) }
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		s, err := previewtest.Login(lctx, base, code)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		setters[i] = func(ctx context.Context, muted bool) error {
			return s.Call(ctx, "POST", "/api/mute", map[string]any{"target": "mic", "muted": muted}, nil)
		}
	}
	api := localapi.Dial(stateDir)
	v := watchPreview(t, d)

	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, seed))
	start := time.Now()
	var ended [2]int // rounds ending unmuted, muted
	for round := range stressRounds {
		values := make([]bool, stressClients)
		for i := range values {
			values[i] = rng.IntN(2) == 1
		}
		errs := fire(ctx, setters, values)
		done := time.Now()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: client %d (muted=%v): %v", round, i, values[i], err)
			}
		}
		muted := agreedMute(t, srv, api, stateDir, round)
		if muted {
			ended[1]++
			expectNoTone(t, v, done.Add(muteBudget), round)
		} else {
			ended[0]++
			expectTone(t, v, done, round)
		}
	}
	t.Logf("%d rounds of %d racing clients in %v (seed %d): %d ended muted, %d unmuted",
		stressRounds, stressClients, time.Since(start).Round(time.Millisecond), seed, ended[1], ended[0])
}

// fire calls every setter at once, each with its value, and returns their errors.
func fire(ctx context.Context, setters []func(context.Context, bool) error, values []bool) []error {
	errs := make([]error, len(setters))
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i, set := range setters {
		wg.Go(func() {
			<-gate
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			errs[i] = set(cctx, values[i])
		})
	}
	close(gate)
	wg.Wait()
	return errs
}

// agreedMute checks, once every call of a round has returned, that Status, its LED,
// state.json and the server agree on the mic, and returns their value. All calls having
// returned, the device's own three are final; the server is checked behind a fence: a
// camera change sent after them on the same signal connection, which the server handles
// in order, so once it shows the camera change it has handled the mic's.
func agreedMute(t *testing.T, srv *lktest.Server, api *localapi.Client, stateDir string, round int) bool {
	t.Helper()
	ctx := context.Background()
	st, err := api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	saved := readState(t, stateDir)
	if st.LED != st.MicMuted || saved.MicMuted != st.MicMuted {
		t.Fatalf("round %d: Status mic muted %v, LED %v, state.json %v", round, st.MicMuted, st.LED, saved.MicMuted)
	}
	fence := round%2 == 0
	if err := api.SetMuted(ctx, control.TargetCamera, fence); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, fmt.Sprintf("round %d: the server to show the camera fence (off=%v)", round, fence), 10*time.Second, func() bool {
		m, ok := mutedOnServer(t, srv, "VIDEO")
		return ok && m == fence
	})
	if m, ok := micMutedOnServer(t, srv); !ok || m != st.MicMuted {
		t.Fatalf("round %d: the server has the mic muted=%v (listed %v), the device %v", round, m, ok, st.MicMuted)
	}
	return st.MicMuted
}

// readState reads state.json as the daemon left it (it replaces it atomically). Until the
// first change there is none, which the store reads as the defaults: a round whose calls
// all leave the state as it was changes nothing.
func readState(t *testing.T, stateDir string) store.SavedState {
	t.Helper()
	var st store.SavedState
	data, err := os.ReadFile(filepath.Join(stateDir, store.StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("state.json: %v", err)
	}
	return st
}

// expectNoTone waits for 100 ms of preview audio sent from since on and checks that none
// of it carries the tone.
func expectNoTone(t *testing.T, v *previewtest.Viewer, since time.Time, round int) {
	t.Helper()
	var audio []previewtest.AudioChunk
	testwait.ForEvery(t, fmt.Sprintf("round %d: 100 ms of preview audio after the mute budget", round), 10*time.Second, 100*time.Millisecond, func() bool {
		audio = previewAudio(t, v, since)
		return len(audio) >= 5
	})
	for _, c := range audio {
		if level := sim.ToneDBFS(c.PCM, 440, 48000); level > silentDBFS {
			t.Fatalf("round %d: audio packet at %s carries the tone at %.1f dBFS with the mic muted since %s",
				round, c.At.Format("15:04:05.000"), level, since.Add(-muteBudget).Format("15:04:05.000"))
		}
	}
}

// expectTone waits for a preview audio packet sent from since on that carries the tone.
func expectTone(t *testing.T, v *previewtest.Viewer, since time.Time, round int) {
	t.Helper()
	testwait.ForEvery(t, fmt.Sprintf("round %d: the tone in the preview with the mic on", round), 10*time.Second, 50*time.Millisecond, func() bool {
		for _, c := range previewAudio(t, v, since) {
			if sim.ToneDBFS(c.PCM, 440, 48000) > toneDBFS {
				return true
			}
		}
		return false
	})
}

func previewAudio(t *testing.T, v *previewtest.Viewer, since time.Time) []previewtest.AudioChunk {
	t.Helper()
	audio, err := v.Audio()
	if err != nil {
		t.Fatal(err)
	}
	return audioSince(audio, since)
}
