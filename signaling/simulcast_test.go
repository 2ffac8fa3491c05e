package signaling_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"roombox/hal/sim"
	"roombox/internal/testkit/lkprobetest"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/testwait"
	"roombox/media"
	"roombox/signaling"
)

// The three layers the simulcast tests publish, at 15 fps so three x264 encoders stay
// light on a loaded 2-core machine.
var testLayers = []signaling.VideoLayer{
	{Width: 1280, Height: 720, Bitrate: 1_500_000},
	{Width: 640, Height: 360, Bitrate: 500_000},
	{Width: 320, Height: 180, Bitrate: 150_000},
}

// camera is a box publishing a simulcast camera: one sim camera and x264 encoder per layer,
// each writing its own LayerTrack, as the appliance's media pipeline will.
type camera struct {
	*box
	video    *signaling.VideoTrack
	plis     [3]atomic.Int64 // PLIs and FIRs per layer, by quality
	twcc     atomic.Int64    // transport-wide CC feedback packets received
	twccPkts atomic.Int64    // packets those reported on
	bitrates chan int        // OnTargetBitrateChange, newest last (dropped when full)
}

func startCamera(t *testing.T, url, identity string, layers ...signaling.VideoLayer) *camera {
	t.Helper()
	vt, err := signaling.NewVideoTrack("camera", identity, layers...)
	if err != nil {
		t.Fatal(err)
	}
	c := &camera{box: &box{events: make(chan signaling.Event, 256)}, video: vt, bitrates: make(chan int, 256)}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	defer t.Cleanup(c.stop) // registered last, so it runs before the encoders close
	// One camera at the largest layer's size, through media.Video's layers (largest first),
	// each written to its LayerTrack.
	tracks := slices.Clone(vt.Layers())
	slices.Reverse(tracks)
	top := tracks[0].Layer()
	board, err := sim.New(sim.Config{Width: int(top.Width), Height: int(top.Height), FPS: 15})
	if err != nil {
		t.Fatal(err)
	}
	cfgs := make([]media.LayerConfig, len(tracks))
	for i, l := range tracks {
		size := l.Layer()
		cfgs[i] = media.LayerConfig{RID: l.RID(), Width: int(size.Width), Height: int(size.Height), Bitrate: int(size.Bitrate), Out: l}
	}
	v, err := media.NewVideo(board.Camera, media.OpenX264, cfgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	for i, l := range tracks {
		plis, layer := &c.plis[l.Quality()], v.Layer(i)
		l.OnRTCP(func(pkts []rtcp.Packet) {
			for _, p := range pkts {
				switch p.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					plis.Add(1)
				}
			}
			layer.HandleRTCP(pkts)
		})
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); _ = v.Run(ctx) }()
	c.room = signaling.NewRoom(signaling.RoomOptions{
		URL: url, Tokens: signaling.StaticToken(lktest.Token(t, testRoom, identity)),
		OnEvent: func(e signaling.Event) {
			select {
			case c.events <- e:
			default:
			}
		},
		OnTargetBitrateChange: func(bps int) {
			select {
			case c.bitrates <- bps:
			default:
			}
		},
		Backoff: func(int) time.Duration { return 200 * time.Millisecond },
	})
	c.room.SetTracks(signaling.Track{
		LocalTrack: signaling.LocalTrack{Video: vt, Source: signaling.SourceCamera, Name: "camera"},
		// Every layer's RTCP, after the layer's own callback.
		OnRTCP: func(pkts []rtcp.Packet) {
			for _, p := range pkts {
				if fb, ok := p.(*rtcp.TransportLayerCC); ok {
					c.twcc.Add(1)
					c.twccPkts.Add(int64(fb.PacketStatusCount))
				}
			}
		},
	})
	c.wg.Add(1)
	go func() { defer c.wg.Done(); _ = c.room.Run(ctx) }()
	return c
}

// TestSimulcastThreeLayersThroughServer (issue 13): the box publishes three layers of real
// H.264; the server describes the track with the three layers as announced (quality, size),
// and an independent subscriber (LiveKit's Go SDK, lkprobe) asking for each quality receives
// pictures of that layer's size (read from the SPS of the keyframes that arrive). A PLI the
// subscriber sends reaches the layer it receives, and only that layer's encoder.
func TestSimulcastThreeLayersThroughServer(t *testing.T) {
	// livekit-server forwards at most one PLI a second or so per layer (rtc.pli_throttle);
	// the layer switch's own PLI would swallow the subscriber's, so all are let through.
	srv := lktest.Start(t, lktest.WithConfig(func(c *lktest.Config) {
		if c.RTC.Extra == nil {
			c.RTC.Extra = map[string]any{}
		}
		c.RTC.Extra["pli_throttle"] = map[string]any{"low_quality": "1ms", "mid_quality": "1ms", "high_quality": "1ms"}
	}))
	cam := startCamera(t, srv.URL, "box", testLayers...)
	waitEvent[signaling.Joined](t, cam.box, 20*time.Second)
	probe := lkprobetest.Start(t, srv.URL, lktest.Token(t, testRoom, "lkprobe"), "-participant", "box")

	track, _ := probe.Wait(t, "the box's camera track", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "track" && l.Kind == "video"
	})
	t.Logf("server: track %s %s %dx%d simulcast=%v layers %+v", track.SID, track.MimeType, track.Width, track.Height,
		track.Simulcast, track.Layers)
	if !track.Simulcast || track.Width != 1280 || track.Height != 720 {
		t.Errorf("track: simulcast=%v %dx%d, want simulcast 1280x720", track.Simulcast, track.Width, track.Height)
	}
	want := []lkprobetest.Layer{{Quality: "LOW", Width: 320, Height: 180}, {Quality: "MEDIUM", Width: 640, Height: 360},
		{Quality: "HIGH", Width: 1280, Height: 720}}
	var got []lkprobetest.Layer
	for _, l := range track.Layers {
		got = append(got, lkprobetest.Layer{Quality: l.Quality, Width: l.Width, Height: l.Height})
	}
	slices.SortFunc(got, func(a, b lkprobetest.Layer) int { return a.Width - b.Width })
	if !slices.Equal(got, want) {
		t.Fatalf("the server's layers %+v, want %+v", got, want)
	}

	from := 0
	for _, q := range []struct {
		name    string
		quality signaling.VideoQuality
		w, h    int
	}{{"LOW", signaling.QualityLow, 320, 180}, {"MEDIUM", signaling.QualityMedium, 640, 360}, {"HIGH", signaling.QualityHigh, 1280, 720}} {
		st, at := probe.Receive(t, track.SID, q.name, q.w, q.h, from)
		t.Logf("%s: %dx%d, %d frames, %d packets, %d bytes in a second", q.name, st.Width, st.Height, st.Frames, st.Packets, st.Bytes)
		// A PLI from the subscriber is forwarded to the layer it receives.
		before := cam.plis[q.quality].Load()
		probe.Send(t, "pli")
		testwait.For(t, "the subscriber's PLI at the "+q.name+" layer", 10*time.Second, func() bool {
			return cam.plis[q.quality].Load() > before
		})
		from = at + 1
	}
	t.Logf("PLIs and FIRs per layer (low, medium, high): %d %d %d", cam.plis[0].Load(), cam.plis[1].Load(), cam.plis[2].Load())
	// The server has reported on every layer's SSRC, so the layers stopped sending MID and RID.
	for _, l := range cam.video.Layers() {
		testwait.For(t, "a receiver report on the "+l.Quality().String()+" layer", 10*time.Second, func() bool { return !l.Stamping() })
	}
}

// TestDynacastLayersWanted (issue 13): the server tells the publisher which layers anyone
// receives. With no subscriber, none; a subscriber at LOW wants only q (the higher layers
// are switched off after the server's downgrade debounce). The track stays published.
func TestDynacastLayersWanted(t *testing.T) {
	srv := lktest.Start(t)
	cam := startCamera(t, srv.URL, "box", testLayers...)
	_, joined := waitEvent[signaling.Joined](t, cam.box, 20*time.Second)
	sid := cam.room.State().Published[signaling.SourceCamera]

	// wanted waits for a LayersWanted of the camera saying exactly w.
	var mu sync.Mutex
	var seen []string
	wanted := func(what string, d time.Duration, w map[signaling.VideoQuality]bool) time.Time {
		t.Helper()
		deadline := time.After(d)
		for {
			select {
			case e := <-cam.events:
				ev, ok := e.(signaling.LayersWanted)
				if !ok {
					continue
				}
				mu.Lock()
				seen = append(seen, time.Now().Format("15:04:05.000")+" "+fmtWanted(ev.Wanted))
				mu.Unlock()
				if ev.TrackSID != sid || ev.TrackID != cam.video.ID() {
					t.Fatalf("LayersWanted for track %s (%q), want %s (%q)", ev.TrackSID, ev.TrackID, sid, cam.video.ID())
				}
				if equalWanted(ev.Wanted, w) {
					t.Logf("%s: %s", what, fmtWanted(ev.Wanted))
					return time.Now()
				}
			case <-deadline:
				t.Fatalf("no LayersWanted saying %s (%s) within %v; seen: %v", fmtWanted(w), what, d, seen)
			}
		}
	}
	none := map[signaling.VideoQuality]bool{signaling.QualityLow: false, signaling.QualityMedium: false, signaling.QualityHigh: false}
	wanted("no subscriber", 30*time.Second, none)

	probe := lkprobetest.Start(t, srv.URL, lktest.Token(t, testRoom, "lkprobe"), "-participant", "box", "-quality", "LOW")
	probe.Wait(t, "the box's camera track", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "track" && l.Kind == "video"
	})
	start := time.Now()
	at := wanted("a subscriber at LOW", 30*time.Second, map[signaling.VideoQuality]bool{
		signaling.QualityLow: true, signaling.QualityMedium: false, signaling.QualityHigh: false})
	t.Logf("only LOW wanted %v after the subscriber's track arrived", at.Sub(start).Round(time.Millisecond))

	// Still published: the subscriber receives LOW pictures.
	probe.Wait(t, "a second of LOW video", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "stats" && l.Kind == "video" && l.Frames > 0 && l.Width == 320 && l.Height == 180
	})
	if got := cam.room.State().Published[signaling.SourceCamera]; got != sid {
		t.Fatalf("camera published as %q, want %q", got, sid)
	}
	mu.Lock()
	t.Logf("every LayersWanted (joined at %s, subscriber's track at %s): %v", joined.Format("15:04:05.000"),
		start.Format("15:04:05.000"), seen)
	mu.Unlock()
}

func equalWanted(a, b map[signaling.VideoQuality]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for q, v := range b {
		if w, ok := a[q]; !ok || w != v {
			return false
		}
	}
	return true
}

func fmtWanted(w map[signaling.VideoQuality]bool) string {
	s := ""
	for _, q := range []signaling.VideoQuality{signaling.QualityLow, signaling.QualityMedium, signaling.QualityHigh} {
		v, ok := w[q]
		switch {
		case !ok:
			s += q.String() + ":? "
		case v:
			s += q.String() + ":on "
		default:
			s += q.String() + ":off "
		}
	}
	return s[:len(s)-1]
}

// TestCongestionControlFeedback (issue 13): the box's video packets carry transport-wide
// sequence numbers, livekit-server answers them with transport-wide CC feedback (it sends
// no REMB, and no feedback for packets without the extension), and the gcc estimate moves
// off its start from that feedback: up, on an unimpaired loopback, to 1.5 Mbit/s (the
// three layers send about 2.2 Mbit/s; unloaded, gcc passes 2 Mbit/s in about 8 s).
func TestCongestionControlFeedback(t *testing.T) {
	srv := lktest.Start(t)
	cam := startCamera(t, srv.URL, "box", testLayers...)
	waitEvent[signaling.Joined](t, cam.box, 20*time.Second)
	const start = 1_000_000 // Bandwidth's default
	const target = 3 * start / 2
	if got := cam.room.TargetBitrate(); got != start {
		t.Errorf("estimate before feedback %d, want the start, %d", got, start)
	}
	testwait.For(t, "transport-wide CC feedback", 20*time.Second, func() bool { return cam.twccPkts.Load() > 0 })
	deadline := time.After(60 * time.Second)
	t0 := time.Now()
	var changes []int
	for {
		select {
		case bps := <-cam.bitrates:
			changes = append(changes, bps)
			if bps > target {
				t.Logf("after %v: estimate %d bit/s after %d changes (%v); %d feedback packets on %d packets; gcc %v", time.Since(t0), bps, len(changes),
					changes, cam.twcc.Load(), cam.twccPkts.Load(), cam.room.Session().BandwidthStats())
				if got := cam.room.TargetBitrate(); got < start {
					t.Errorf("TargetBitrate %d after OnTargetBitrateChange %d", got, bps)
				}
				return
			}
		case <-deadline:
			t.Fatalf("the estimate did not reach %d within 60 s: changes %v, %d feedback packets on %d packets; gcc %v",
				target, changes, cam.twcc.Load(), cam.twccPkts.Load(), cam.room.Session().BandwidthStats())
		}
	}
}

// TestVideoTrackOneLayerIsPlain: a VideoTrack of one layer is today's plain camera track (no
// rid, one HIGH layer); the server and a subscriber see it so, and its PLIs reach it.
func TestVideoTrackOneLayerIsPlain(t *testing.T) {
	srv := lktest.Start(t)
	cam := startCamera(t, srv.URL, "box", signaling.VideoLayer{Width: 640, Height: 360, Bitrate: 500_000})
	waitEvent[signaling.Joined](t, cam.box, 20*time.Second)
	probe := lkprobetest.Start(t, srv.URL, lktest.Token(t, testRoom, "lkprobe"), "-participant", "box")
	track, _ := probe.Wait(t, "the box's camera track", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "track" && l.Kind == "video"
	})
	t.Logf("server: track %dx%d simulcast=%v layers %+v", track.Width, track.Height, track.Simulcast, track.Layers)
	if track.Simulcast || len(track.Layers) != 1 || track.Layers[0].Quality != "HIGH" || track.Layers[0].Width != 640 {
		t.Fatalf("one layer: simulcast=%v layers %+v, want one HIGH 640x360 layer", track.Simulcast, track.Layers)
	}
	_, at := probe.Wait(t, "a second of 640x360", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "stats" && l.SID == track.SID && l.Frames > 0 && l.Width == 640 && l.Height == 360
	})
	before := cam.plis[signaling.QualityHigh].Load()
	probe.Send(t, "pli")
	probe.Wait(t, "the IDR answering the PLI", 10*time.Second, at, func(l lkprobetest.Line) bool {
		return l.Event == "keyframe" && l.PLI == 1
	})
	if cam.plis[signaling.QualityHigh].Load() == before {
		t.Fatalf("the PLI was answered without reaching the layer's callback")
	}
}

// TestSimulcastStatsCountEveryLayer: a simulcast track's send statistics are all its layers':
// each rid's own counters and send rate, lowest first, and the track's their sum (once only
// the largest layer's SSRC was counted, so the video rate missed h and q).
func TestSimulcastStatsCountEveryLayer(t *testing.T) {
	srv := lktest.Start(t)
	cam := startCamera(t, srv.URL, "box", testLayers...)
	waitEvent[signaling.Joined](t, cam.box, 20*time.Second)
	testwait.For(t, "packets sent on every layer", 20*time.Second, func() bool {
		sess := cam.room.Session()
		if sess == nil {
			return false
		}
		st := sess.Stats()
		return len(st) == 1 && len(st[0].Layers) == 3 && !slices.ContainsFunc(st[0].Layers, func(l signaling.LayerStats) bool {
			return l.PacketsSent == 0
		})
	})
	cam.room.Stats() // the rates' first reading
	// Rates are per interval between calls: poll slowly enough that every layer (15 fps)
	// has sent a frame in each.
	var st signaling.TrackStats
	testwait.ForEvery(t, "a send rate on every layer", 20*time.Second, 500*time.Millisecond, func() bool {
		stats := cam.room.Stats()
		if len(stats) != 1 {
			return false
		}
		st = stats[0]
		return !slices.ContainsFunc(st.Layers, func(l signaling.LayerStats) bool { return l.BitrateBps == 0 })
	})
	var rids []string
	var packets, bytes uint64
	var rate float64
	for _, l := range st.Layers {
		t.Logf("layer %s: %d packets, %d bytes, %.0f bit/s", l.RID, l.PacketsSent, l.BytesSent, l.BitrateBps)
		rids = append(rids, l.RID)
		packets += l.PacketsSent
		bytes += l.BytesSent
		rate += l.BitrateBps
	}
	t.Logf("track %s: %d packets, %d bytes, %.0f bit/s", st.TrackID, st.PacketsSent, st.BytesSent, st.BitrateBps)
	if !slices.Equal(rids, []string{"q", "h", "f"}) {
		t.Errorf("layers %v, want q, h, f (lowest first)", rids)
	}
	if st.TrackID != cam.video.ID() || st.PacketsSent != packets || st.BytesSent != bytes {
		t.Errorf("track %s: %d packets, %d bytes; want %s with the layers' sum, %d packets, %d bytes",
			st.TrackID, st.PacketsSent, st.BytesSent, cam.video.ID(), packets, bytes)
	}
	if d := st.BitrateBps - rate; d > 1 || d < -1 {
		t.Errorf("track rate %.0f bit/s, want the layers' sum, %.0f", st.BitrateBps, rate)
	}
}
