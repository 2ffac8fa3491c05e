package e2e

import (
	"slices"
	"testing"
	"time"

	"roombox/internal/testkit/lkprobetest"
	"roombox/internal/testkit/lktest"
)

// The box as LiveKit's own Go SDK sees it (issue 13, must-show 3, for today's single layer):
// tools/lkprobe, an independent client, subscribes to the box's camera through the real
// server; the server describes the track with the layer(s) the box announced, the probe
// receives pictures of the announced size, and each of its PLIs is answered by an IDR. The
// PLI -> IDR latencies are logged (figures in docs/BENCHMARKS.md), not asserted.
func TestIndependentClientSeesCameraAndGetsKeyframes(t *testing.T) {
	// livekit-server forwards at most one PLI a second per layer to a publisher
	// (rtc.pli_throttle: 1 s for HIGH and MEDIUM by default), dropping the rest. This test
	// measures the box's answer, not the server's throttle, so every PLI is let through.
	srv := lktest.Start(t, lktest.WithConfig(func(c *lktest.Config) {
		if c.RTC.Extra == nil {
			c.RTC.Extra = map[string]any{}
		}
		c.RTC.Extra["pli_throttle"] = map[string]any{"low_quality": "1ms", "mid_quality": "1ms", "high_quality": "1ms"}
	}))
	provisionedDevice(t, srv)
	probe := lkprobetest.Start(t, srv.URL, lktest.Token(t, room, "lkprobe"), "-participant", deviceIdentity, "-audio")

	// The track as the server describes it: a camera, H.264, with the box's layer(s).
	track, _ := probe.Wait(t, "the box's camera track", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "track" && l.Kind == "video"
	})
	t.Logf("server: track %s source %s %s %dx%d simulcast=%v layers %+v", track.SID, track.Source, track.MimeType,
		track.Width, track.Height, track.Simulcast, track.Layers)
	if track.Participant != deviceIdentity || track.Source != "CAMERA" || track.MimeType != "video/H264" {
		t.Fatalf("track: participant %q source %q mime %q, want %q CAMERA video/H264", track.Participant, track.Source, track.MimeType, deviceIdentity)
	}
	if len(track.Layers) == 0 {
		t.Fatalf("the server reports no layers for the box's camera")
	}
	top := slices.MaxFunc(track.Layers, func(a, b lkprobetest.Layer) int { return a.Width*a.Height - b.Width*b.Height })
	if top.Width != track.Width || top.Height != track.Height {
		t.Fatalf("the largest layer is %dx%d, the track %dx%d", top.Width, top.Height, track.Width, track.Height)
	}

	mic, _ := probe.Wait(t, "the box's microphone track", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "track" && l.Kind == "audio"
	})
	if mic.Source != "MICROPHONE" || len(mic.Layers) != 0 {
		t.Fatalf("microphone track: source %q, layers %+v", mic.Source, mic.Layers)
	}
	probe.Wait(t, "a second of microphone packets", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "stats" && l.SID == mic.SID && l.Packets > 0
	})

	// What arrives: pictures of the size the box announced, a second's worth of frames.
	stats, _ := probe.Wait(t, "a second of video at the announced size", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "stats" && l.SID == track.SID && l.Frames > 0 && l.Width == track.Width && l.Height == track.Height
	})
	t.Logf("received in one second: %dx%d, %d frames, %d keyframes, %d packets, %d bytes",
		stats.Width, stats.Height, stats.Frames, stats.Keyframes, stats.Packets, stats.Bytes)

	// PLIs, each sent once a keyframe has arrived; each is answered by an IDR within a few
	// frames. The box also sends an IDR of its own every 2 s (60 frames) after the last one,
	// which would answer a PLI it ignored; as each PLI follows a keyframe, an IDR at most
	// maxFramesBeforeIDR frames after it is the PLI's answer (the frames in flight when the
	// PLI left, and the one being encoded, come before it).
	const plis, maxFramesBeforeIDR = 10, 10
	_, from := probe.Wait(t, "a keyframe", 20*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "keyframe" && l.SID == track.SID
	})
	var latencies []float64
	var frames []int
	for n := 1; n <= plis; n++ {
		probe.Send(t, "pli")
		kf, at := probe.Wait(t, "the IDR answering PLI", 10*time.Second, from+1, func(l lkprobetest.Line) bool {
			return l.Event == "keyframe" && l.SID == track.SID && l.PLI == n
		})
		if kf.Width != track.Width || kf.Height != track.Height {
			t.Fatalf("the IDR answering PLI %d is %dx%d, want %dx%d", n, kf.Width, kf.Height, track.Width, track.Height)
		}
		if kf.FramesAfterPLI > maxFramesBeforeIDR {
			t.Fatalf("PLI %d: %d frames came before the next IDR (%.1f ms): the box's own schedule, not an answer", n, kf.FramesAfterPLI, kf.PLIToIDRMs)
		}
		latencies = append(latencies, kf.PLIToIDRMs)
		frames = append(frames, kf.FramesAfterPLI)
		from = at
	}
	slices.Sort(latencies)
	t.Logf("PLI -> first packet of the next IDR over %d PLIs: min %.1f ms, median %.1f ms, max %.1f ms (all: %v)",
		plis, latencies[0], (latencies[plis/2-1]+latencies[plis/2])/2, latencies[plis-1], latencies)
	t.Logf("frames received between each PLI and its IDR: %v", frames)

	// Asking for a lower layer of a one-layer track: the server keeps forwarding the one
	// it has, at its size (the next keyframe's SPS, then a second's count).
	from = len(probe.Lines())
	probe.Send(t, "quality LOW")
	probe.Send(t, "dimensions 160 90")
	kf, from := probe.Wait(t, "a keyframe after asking for LOW", 10*time.Second, from, func(l lkprobetest.Line) bool {
		return l.Event == "keyframe" && l.SID == track.SID
	})
	if kf.Width != track.Width || kf.Height != track.Height {
		t.Fatalf("after asking for LOW: a %dx%d keyframe, want the one layer, %dx%d", kf.Width, kf.Height, track.Width, track.Height)
	}
	probe.Wait(t, "a second of video after asking for LOW", 10*time.Second, from+1, func(l lkprobetest.Line) bool {
		return l.Event == "stats" && l.SID == track.SID && l.Frames > 0 && l.Width == track.Width && l.Height == track.Height
	})
}
