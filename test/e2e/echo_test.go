package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"roombox/control"
	"roombox/internal/testkit/echotest"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
	"roombox/localapi"
)

// Echo figures the end-to-end test checks.
const (
	// echoSeenDBFS: the talker's speech back from the box, louder than this over a
	// second, is its echo; the box's microphone hears nothing else but the room's fan, at
	// -70 dBFS.
	echoSeenDBFS = -55.0
	// echoOffAtLeast: with the canceller off, the echo must be at least this strong
	// relative to the talker (the room gives about -21 dB at the default volume), so the
	// measure visibly sees it and the check below can fail.
	echoOffAtLeast = -35.0
	// echoOffExplained: with it off, the fit must explain at least a tenth of all that came
	// back (a fit at a wrong lag explains only its floor, 1057 taps in 48000 samples, 16.6 dB
	// below), so the echo was found, not the floor of something loud.
	echoOffExplained = 10.0
	// echoCancelled is how much weaker the echo must be with cancellation on (issue 12), in
	// the median second; echoCancelledAll over the whole measure, which also counts the
	// seconds where the canceller let a burst through after the loaded machine stalled the
	// box (docs/BENCHMARKS.md: 22.7 to 53.4 dB over nine runs under stress-ng, the median
	// second 34.6 to 62.0 dB).
	echoCancelled    = 25.0
	echoCancelledAll = 15.0
	// echoMeasured is how much talk each setting is measured over; echoConverge is the far
	// end the canceller hears after it is switched on before its measure starts.
	echoMeasured = 8 * time.Second
	echoConverge = 2 * time.Second
)

// TestEchoCancellationEndToEnd: a talker (a second participant, publishing espeak-ng speech
// in Opus) and the real roombox on the sim board in the simulated meeting room
// (`--sim-room on`: what its speaker plays comes back into its microphone, 40 ms, T60
// 250 ms, 6 dB below the speaker drive, a fan at -70 dBFS) whose microphone hears nothing
// else (`--sim-mic` of silence). The box plays the talker; the talker decodes the box's
// Opus and measures how much of its own speech comes back (echotest: per second, the lag
// by envelope and waveform cross-correlation within 0..1.5 s, the echo's energy as the
// least-squares fit of what came back from what was said around that lag). First with the
// echo canceller switched off through the LocalAPI (POST /v1/audio), where the echo must
// be plain, then switched on in the same run, measured after the canceller has heard 2 s
// of the talker: at least 25 dB weaker in the median second, and 15 dB over all 8 s. One
// run, one room, one network path and one playback buffer for both, so the difference is
// the canceller's alone.
func TestEchoCancellationEndToEnd(t *testing.T) {
	const (
		room = "echo"
		box  = "roombox-echo"
	)
	says := echotest.Speech(t, "en-us", echotest.Text, -20)
	srv := lktest.Start(t)
	bin := roomboxtest.Binary(t)
	stateDir := roomboxtest.StateDir(t)
	silence := filepath.Join(t.TempDir(), "silence.wav")
	if err := echotest.WriteWAV(silence, make([]int16, echotest.Rate)); err != nil {
		t.Fatal(err)
	}
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--url", srv.URL, "--token", lktest.Token(t, room, box))
	roomboxtest.Start(t, bin, stateDir, "--sim-room", "on", "--sim-mic", silence)
	tk := echotest.JoinTalker(t, srv.URL, lktest.Token(t, room, "talker"), says, box)
	roomboxtest.WaitStatus(t, bin, stateDir, "the box in the room", time.Minute, func(st control.Status) bool {
		return st.State == "in-room"
	})
	testwait.For(t, "the box's audio at the talker", time.Minute, func() bool { return tk.Tracks() > 0 })

	// Off: the echo comes back, plain.
	t.Logf("audio settings: %s", setAudio(t, stateDir, map[string]any{"echo_cancellation": false}))
	switched := tk.Index(time.Now())
	second := echotest.Samples(time.Second)
	var seen int
	testwait.For(t, "the talker's speech back from the box", time.Minute, func() bool {
		end := tk.HeardUntil()
		for a := max(switched, seen); a+second <= end; a += second / 10 {
			seen = a
			if tk.HeardDBFS(a, a+second) > echoSeenDBFS {
				return true
			}
		}
		return false
	})
	t.Logf("echo seen %v after the switch", echotest.Duration(seen-switched).Round(time.Millisecond))
	// What the box sent 100 ms after the switch was surely processed with the canceller off.
	offFrom := max(seen, switched+echotest.Samples(100*time.Millisecond))
	offTo := offFrom + echotest.Samples(echoMeasured)
	waitHeard(t, tk, offTo)
	off := tk.Measure(offFrom, offTo, echotest.Options{})
	t.Logf("echo canceller off: %v", off)
	if !(off.EchoDB > echoOffAtLeast) || !(off.EchoDB > off.LevelDB-echoOffExplained) || off.Active < 4 {
		t.Fatalf("echo canceller off: echo %.1f dB of %.1f dB heard, in %d active windows; want above %.0f dB, within %.0f dB of all heard, in at least 4 (the measure must see the echo)",
			off.EchoDB, off.LevelDB, off.Active, echoOffAtLeast, echoOffExplained)
	}

	// On: after the canceller has heard 2 s of the talker, the echo is 25 dB weaker.
	t.Logf("audio settings: %s", setAudio(t, stateDir, map[string]any{"echo_cancellation": true}))
	switched = tk.Index(time.Now())
	lag := echotest.Samples(off.Lag)
	// What the talker says from the switch on reaches the box's speaker after it; once 2 s
	// of talk has, the canceller has converged, and the measure starts a lag later, where
	// the box sends what its microphone heard then.
	onFrom := echotest.TalkAfter(tk.Sent(switched+echotest.Samples(time.Minute)), switched, echoConverge) + lag
	onTo := onFrom + echotest.Samples(echoMeasured)
	waitHeard(t, tk, onTo)
	on := tk.Measure(onFrom, onTo, echotest.Options{Lags: []time.Duration{off.Lag}})
	t.Logf("echo canceller on: %v", on)
	t.Logf("figure: e2e_echo_off=%.1f dB (median second %.1f dB)", off.EchoDB, off.MedianDB)
	t.Logf("figure: e2e_echo_on=%.1f dB (median second %.1f dB)", on.EchoDB, on.MedianDB)
	t.Logf("figure: e2e_echo_cancelled=%.1f dB (median second %.1f dB)", off.EchoDB-on.EchoDB, off.MedianDB-on.MedianDB)
	t.Logf("figure: e2e_echo_lag=%v", off.Lag.Round(time.Millisecond))
	t.Logf("the box's audio: its RTP time against the talker's timeline moved by %v over the run", tk.Placement().Round(time.Millisecond))
	if got := off.MedianDB - on.MedianDB; !(got >= echoCancelled) {
		t.Errorf("echo cancellation on: echo %.1f dB in the median second, %.1f dB below the %.1f dB with it off; want at least %.0f dB below",
			on.MedianDB, got, off.MedianDB, echoCancelled)
	}
	if got := off.EchoDB - on.EchoDB; !(got >= echoCancelledAll) {
		t.Errorf("echo cancellation on: echo %.1f dB over %v, %.1f dB below the %.1f dB with it off; want at least %.0f dB below",
			on.EchoDB, echoMeasured, got, off.EchoDB, echoCancelledAll)
	}
}

// waitHeard waits until the talker has heard the box up to index end of its timeline.
func waitHeard(t *testing.T, tk *echotest.Talker, end int) {
	t.Helper()
	wait := echotest.Duration(end-tk.Index(time.Now())) + time.Minute
	testwait.For(t, fmt.Sprintf("the box's audio up to %v of the talker's timeline", echotest.Duration(end)), wait,
		func() bool { return tk.HeardUntil() >= end })
}

// setAudio changes the box's audio settings through its LocalAPI (POST /v1/audio with the
// fields to change, over the unix socket, as any local program would) and returns the
// settings it answers with, failing the test unless they hold the change.
func setAudio(t *testing.T, stateDir string, patch map[string]any) json.RawMessage {
	t.Helper()
	socket := localapi.SocketPath(stateDir)
	hc := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	body, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://roombox/v1/audio", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/audio %s: %v", body, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("POST /v1/audio %s: %v", body, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/audio %s: %s: %s", body, resp.Status, reply)
	}
	var got map[string]any
	if err := json.Unmarshal(reply, &got); err != nil {
		t.Fatalf("POST /v1/audio %s: reply %s: %v", body, reply, err)
	}
	for k, v := range patch {
		if got[k] != v {
			t.Fatalf("POST /v1/audio %s: reply %s has %s=%v", body, reply, k, got[k])
		}
	}
	return reply
}
