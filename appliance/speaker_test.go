package appliance

import (
	"context"
	"math"
	"roombox/control"
	"slices"
	"sync"
	"testing"
	"time"

	"roombox/hal/sim"
	"roombox/internal/testkit/echotest"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/testwait"
	"roombox/media"
)

// earWindow is 200 ms: a whole number of cycles of 660 Hz, so Goertzel reads it cleanly.
const earWindow = sim.SampleRate / 5

// ear is the sim speaker with what the test needs to listen: the last 200 ms played and,
// per period, when it was played and whether it was silent.
type ear struct {
	*sim.Speaker

	mu     sync.Mutex
	recent []int16
	heard  []heard
}

type heard struct {
	at     time.Time
	silent bool
}

func (e *ear) WritePCM(ctx context.Context, buf []int16) error {
	if err := e.Speaker.WritePCM(ctx, buf); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recent = append(e.recent, buf...)
	e.recent = e.recent[max(len(e.recent)-earWindow, 0):]
	e.heard = append(e.heard, heard{at: time.Now(), silent: !slices.ContainsFunc(buf, func(v int16) bool { return v != 0 })})
	return nil
}

// tone is the level of hz over the last 200 ms played, in dBFS (a sine's peak).
func (e *ear) tone(hz float64) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.recent) < earWindow {
		return sim.MinDBFS
	}
	return sim.ToneDBFS(e.recent, hz, sim.SampleRate)
}

// since returns what was played after t.
func (e *ear) since(t time.Time) []heard {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, _ := slices.BinarySearchFunc(e.heard, t, func(h heard, t time.Time) int { return h.at.Compare(t) })
	return slices.Clone(e.heard[i:])
}

// tone660 is one second of the sim microphone's tone at 660 Hz: a whole number of cycles,
// so a talker says it in a loop without a seam.
func tone660() []int16 {
	pcm := make([]int16, echotest.Rate)
	for i := range pcm {
		pcm[i] = int16(math.Round(sim.ToneAmplitude * math.Sin(2*math.Pi*660*float64(i)/echotest.Rate)))
	}
	return pcm
}

// TestSpeakerPlaysRoom runs the daemon in-process on a sim board whose speaker the test
// listens to, in a room on the real LiveKit server where a second participant talks at
// 660 Hz: the speaker plays the tone at the volume set, and the speaker mute (through the
// LocalAPI) silences it at once while the tone keeps arriving.
func TestSpeakerPlaysRoom(t *testing.T) {
	const room = "speaker"
	srv := lktest.Start(t)
	b, err := sim.New(simConfig(media.DefaultConfig))
	if err != nil {
		t.Fatal(err)
	}
	spk := &ear{Speaker: b.Speaker}
	board := b.HAL()
	board.Speaker = spk
	api := runBoard(t, srv, room, "roombox-speaker", board)
	ctx := context.Background()
	if err := api.SetVolume(ctx, control.MaxVolume); err != nil {
		t.Fatal(err)
	}
	tk := echotest.JoinTalker(t, srv.URL, lktest.Token(t, room, "talker"), tone660(), "")

	// The sim microphone's tone peaks at -10 dBFS; volume 100 is unity gain, 50 is -25 dB.
	start := time.Now()
	testwait.For(t, "the talker's 660 Hz at the speaker, about -10 dBFS", 20*time.Second, func() bool {
		return math.Abs(spk.tone(660)+10) < 2
	})
	t.Logf("talker joined -> 660 Hz at the speaker at %.1f dBFS after %v", spk.tone(660), time.Since(start).Round(time.Millisecond))
	if err := api.SetVolume(ctx, 50); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the tone at volume 50, about -35 dBFS", 5*time.Second, func() bool {
		return math.Abs(spk.tone(660)+35) < 2
	})

	// Deaf: every period played from shortly after the mute request is silent, and periods
	// keep being played, while the talker keeps sending. The mute takes effect before the
	// LocalAPI persists it; the budget is the request's way to applyLocked() plus the period
	// already mixed and the one ramping down.
	const budget = 150 * time.Millisecond
	muted, sent := time.Now(), tk.PacketsSent()
	if err := api.SetMuted(ctx, control.TargetSpeaker, true); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	time.Sleep(time.Second)
	var silent, loud int
	var firstSilent time.Time
	for _, h := range spk.since(muted) {
		if h.silent && firstSilent.IsZero() {
			firstSilent = h.at
		}
		switch {
		case h.silent && h.at.After(muted.Add(budget)):
			silent++
		case !h.silent && (h.at.After(muted.Add(budget)) || !firstSilent.IsZero()):
			loud++ // audible after the budget, or again after silence began
		}
	}
	t.Logf("mute: first silent period %v after the request (the LocalAPI returned after %v); then %d silent and %d audible periods; the talker sent %d packets meanwhile",
		firstSilent.Sub(muted).Round(time.Millisecond), returned.Sub(muted).Round(time.Millisecond), silent, loud, tk.PacketsSent()-sent)
	if loud > 0 || silent < 50 {
		t.Errorf("speaker muted: %d audible periods, %d silent ones after %v (want none audible, silence written every 10 ms)", loud, silent, budget)
	}
	if tk.PacketsSent()-sent < 40 {
		t.Errorf("the talker sent only %d packets while the speaker was muted", tk.PacketsSent()-sent)
	}
	if st, err := api.Status(ctx); err != nil || !st.SpeakerMute {
		t.Errorf("status while muted: %+v, %v", st, err)
	}

	if err := api.SetMuted(ctx, control.TargetSpeaker, false); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the tone after unmute", 5*time.Second, func() bool { return math.Abs(spk.tone(660)+35) < 2 })
}
