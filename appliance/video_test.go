package appliance

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"roombox/hal/sim"
	"roombox/media"
	"roombox/signaling"
)

// TestShareDropsTheTopLayerFirst: the video budget goes to the smallest layer first; a larger
// layer is sent while what is left carries 40 % of its bitrate and comes back only at 55 %
// (no flapping at the edge); while a larger layer is off, what is left over goes to the
// largest layer sent, up to 2.5 times its bitrate, so the send rate can grow into a rising
// estimate.
func TestShareDropsTheTopLayerFirst(t *testing.T) {
	want := []int{1_700_000, 450_000, 160_000} // f, h, q: 720p's
	all, qh := []bool{true, true, true}, []bool{false, true, true}
	for _, tc := range []struct {
		name      string
		budget    int
		sent      []bool
		wantRates []int
		wantSent  []bool
	}{
		{"everything fits", 2_310_000, all, []int{1_700_000, 450_000, 160_000}, all},
		{"f kept at 40 % of its bitrate", 1_290_000, all, []int{680_000, 450_000, 160_000}, all},
		{"f dropped below 40 %, h takes what is left", 1_250_000, all, []int{0, 1_090_000, 160_000}, qh},
		{"f not back at 50 %, h at most 2.5 times", 1_460_000, qh, []int{0, 1_125_000, 160_000}, qh},
		{"f back at 55 %", 1_900_000, qh, []int{1_290_000, 450_000, 160_000}, all},
		{"h and f dropped", 300_000, all, []int{0, 0, 300_000}, []bool{false, false, true}},
		{"q alone, at least 40 % of its bitrate", 10_000, all, []int{0, 0, 64_000}, []bool{false, false, true}},
		{"all sent: no surplus", 9_000_000, all, []int{1_700_000, 450_000, 160_000}, all},
	} {
		rates, sent := share(tc.budget, want, tc.sent)
		if !slices.Equal(rates, tc.wantRates) || !slices.Equal(sent, tc.wantSent) {
			t.Errorf("%s: share(%d, sent %v) = %v, %v; want %v, %v", tc.name, tc.budget, tc.sent, rates, sent, tc.wantRates, tc.wantSent)
		}
	}
}

// TestProberTriesTheNextLayer: a layer the estimate does not carry is tried for trialFor
// after a backoff; a trial the link refuses (the estimate falls by 15 %) ends at once and
// the next waits twice as long; one the estimate carries stays (share keeps it) and resets
// the backoff.
func TestProberTriesTheNextLayer(t *testing.T) {
	want := []int{1_700_000, 450_000, 160_000}
	t0 := time.Unix(1_800_000_000, 0)
	p := newProber()
	step := func(at time.Duration, target int, sent []bool) ([]int, []bool) {
		rates := []int{0, 450_000, 160_000}
		s := slices.Clone(sent)
		p.adjust(t0.Add(at), target, 0, false, want, rates, s)
		return rates, s
	}
	qh := []bool{false, true, true}
	if _, s := step(0, 1_000_000, qh); s[0] {
		t.Fatal("f tried at once; want a backoff first")
	}
	if _, s := step(4*time.Second, 1_000_000, qh); s[0] {
		t.Fatal("f tried before the backoff (5 s) ran out")
	}
	rates, s := step(5*time.Second, 1_000_000, qh)
	if !s[0] || rates[0] != 680_000 {
		t.Fatalf("at 5 s: f sent %v at %d; want tried at 40 %% of its bitrate (680000)", s[0], rates[0])
	}
	if _, s := step(6*time.Second, 840_000, qh); s[0] || p.layer != -1 {
		t.Fatalf("the estimate fell 16 %%: f sent %v, on trial %d; want the trial ended", s[0], p.layer)
	}
	if _, s := step(15*time.Second, 1_000_000, qh); s[0] {
		t.Fatal("tried again 9 s after a refused trial; want 10 s")
	}
	if _, s := step(16*time.Second, 1_000_000, qh); !s[0] {
		t.Fatal("not tried again 10 s after the refused trial")
	}
	// The estimate carries it: share keeps it sent, the trial ends well.
	if _, s := step(20*time.Second, 2_300_000, []bool{true, true, true}); !s[0] || p.layer != -1 || p.backoff != firstBackoff {
		t.Fatalf("after a carried trial: sent %v, on trial %d, backoff %v; want kept, none, %v", s[0], p.layer, p.backoff, firstBackoff)
	}
}

// TestProberBackoffEndsWhenTheLinkRecovers: refused twice at 840 kbit/s (a 20 s backoff),
// the prober waits at 1 Mbit/s but tries at once at 1.1 Mbit/s (130 %): the link got better.
func TestProberBackoffEndsWhenTheLinkRecovers(t *testing.T) {
	want := []int{1_700_000, 450_000, 160_000}
	t0 := time.Unix(1_800_000_000, 0)
	p := newProber()
	p.fail(t0, 840_000)
	p.fail(t0, 840_000)
	for _, tc := range []struct {
		at     time.Duration
		target int
		tried  bool
	}{{time.Second, 1_000_000, false}, {2 * time.Second, 1_100_000, true}} {
		rates, sent := []int{0, 450_000, 160_000}, []bool{false, true, true}
		p.adjust(t0.Add(tc.at), tc.target, 0, false, want, rates, sent)
		if sent[0] != tc.tried {
			t.Errorf("at %v with %d bit/s: f tried %v, want %v", tc.at, tc.target, sent[0], tc.tried)
		}
	}
}

// testLayers is a layerControl over a real three-layer pipeline (not run: the control only
// switches its layers and bitrates) with livekit-client's 720p bitrates.
func testLayers(t *testing.T) *layerControl {
	t.Helper()
	b, err := sim.New(sim.Config{Width: 320, Height: 180, FPS: 30, Clock: sim.NewInstantClock(time.Unix(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := media.SimulcastLayers(320, 180, 2_310_000, 3)
	if err != nil {
		t.Fatal(err)
	}
	sizes, want := layerPlan(cfgs)
	vt, err := signaling.NewVideoTrack("camera", "test", sizes...)
	if err != nil {
		t.Fatal(err)
	}
	tracks := vt.Layers()
	slices.Reverse(tracks)
	for i := range cfgs {
		cfgs[i].Out = tracks[i]
	}
	v, err := media.NewVideo(b.Camera, media.OpenX264, cfgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return newLayerControl(v, tracks, want, 0, 32_000, slog.New(slog.NewTextHandler(t.Output(), nil)))
}

func sent(c *layerControl) string { st := c.status(); return st.Sending() }

// TestEstimateHeldWhileApplicationLimited: while the box sends less than its estimate by
// choice (only q wanted; the camera off), gcc's estimate sinks towards what it sees arrive;
// what is sent follows it, but the estimate from before is held for the resume: every layer
// wanted again is sent at once. Congestion then releases
// the hold, and the top layer goes; a lower estimate without congestion does not.
func TestEstimateHeldWhileApplicationLimited(t *testing.T) {
	c := testLayers(t)
	c.SetTarget(2_700_000, false)
	if got := sent(c); got != "f,h,q" {
		t.Fatalf("at 2.7 Mbit/s: sending %q", got)
	}
	c.SetWanted(map[signaling.VideoQuality]bool{signaling.QualityHigh: false, signaling.QualityMedium: false, signaling.QualityLow: true})
	c.SetTarget(800_000, true) // a trickle's delay noise: not taken while limited
	c.SetTarget(240_000, false)
	if got, est := sent(c), c.status().TargetBitrate; got != "q" || est != 240_000 {
		t.Fatalf("only q wanted, gcc at 240 kbit/s: sending %q, estimate %d; want q at gcc's estimate", got, est)
	}
	c.ResetWanted()
	if got := sent(c); got != "f,h,q" {
		t.Fatalf("every layer wanted again at gcc's 240 kbit/s: sending %q, want all at once", got)
	}
	c.SetTarget(230_000, false) // the first feedback after the resume still counts the trickle
	if got := sent(c); got != "f,h,q" {
		t.Fatalf("a lower estimate without congestion released the hold: sending %q", got)
	}
	c.SetTarget(900_000, true) // the link does not carry 2.4 Mbit/s
	if got, est := sent(c), c.status().TargetBitrate; got != "h,q" || est != 900_000 {
		t.Fatalf("congestion at 900 kbit/s: sending %q, estimate %d; want h,q and the hold released", got, est)
	}

	// The camera off: the black frame's trickle holds the estimate too.
	c.SetTarget(2_700_000, false)
	c.SetCameraOff(true)
	c.SetTarget(200_000, false)
	c.SetCameraOff(false)
	if got, est := sent(c), c.status().TargetBitrate; got != "f,h,q" || est != 2_700_000 {
		t.Fatalf("camera back on: sending %q, estimate %d; want all and 2.7 Mbit/s", got, est)
	}
	c.SetTarget(2_800_000, false) // gcc caught up: its own estimate again
	c.SetTarget(1_000_000, false)
	if est := c.status().TargetBitrate; est != 1_000_000 {
		t.Fatalf("after gcc caught up, its estimate is %d in the status, want 1 Mbit/s", est)
	}
}

// The layer the page previews runs whatever the estimate, at the rate its encoder last had,
// and the status says that rate, not the nothing the estimate leaves it.
func TestPreviewLayerKeepsItsRate(t *testing.T) {
	c := testLayers(t)
	c.SetWatching(true)
	c.SetTarget(2_700_000, false)
	c.SetTarget(600_000, true)
	st := c.status()
	if f := st.Layers[0]; !f.Sent || f.Bitrate != 1_700_000 || c.rates[0] != 0 || st.Sending() != "f,h,q" {
		t.Fatalf("at 600 kbit/s with the preview open: f sent %v at %d (share %d), sending %q; want f, not carried, at its last 1.7 Mbit/s",
			f.Sent, f.Bitrate, c.rates[0], st.Sending())
	}
}
