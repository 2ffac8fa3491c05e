//go:build linux

package netlab_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"roombox/control"
	"roombox/internal/testkit/lkprobetest"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/netlab"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
)

// TestDeviceFollowsTheLinkRate (issue 13, must-show 2): the device's camera (720p30, three
// layers) with a viewer asking for the top layer (lkprobe in the server's namespace), on a
// link that changes under it:
//   - 1 Mbit/s with 10 % loss on the device's egress: the bandwidth estimate the layers
//     share settles at or below 90 % of the link within 10 s (the encoders follow it), and
//     the share of packets the link drops falls;
//   - 5 Mbit/s without loss: back to every layer within 30 s;
//   - 300 kbit/s: video on the lowest layer alone, and the microphone keeps arriving
//     whole (50 packets a second at the viewer).
//
// Figures (the estimate and the link's counters per second) are logged.
func TestDeviceFollowsTheLinkRate(t *testing.T) {
	bin := roomboxtest.Binary(t)
	lab := netlab.New(t)
	lk := netlab.StartLiveKit(t, lab, nil)
	const room, box = "rate", "box"
	tok, err := lktest.MintToken(room, box)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	d := startRoombox(ctx, t, lab, bin, lk.DeviceURL, tok, logDigest)
	cancel()
	status := func() control.Status { return roomboxtest.MustStatus(t, bin, d.StateDir) }
	inServerNS := func(name string, args ...string) *exec.Cmd { return lab.Command(lab.ServerNS, name, args...) }
	viewer, err := lktest.MintToken(room, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	probe := lkprobetest.StartWith(t, inServerNS, lk.DeviceURL, viewer, "-participant", box, "-quality", "HIGH", "-audio")
	roomboxtest.WaitStatus(t, bin, d.StateDir, "every layer sent to the viewer", time.Minute,
		func(st control.Status) bool { return st.Video.Sending() == "f,h,q" })

	// 1 Mbit/s, 10 % loss.
	const link1 = 1000
	lab.Device.Loss(10)
	lab.Device.Rate(link1)
	limited := time.Now()
	first, err := tbfStats(lab.DeviceNS)
	if err != nil {
		t.Fatal(err)
	}
	st := roomboxtest.WaitStatus(t, bin, d.StateDir, "the estimate at or below 90 % of 1 Mbit/s", 10*time.Second,
		func(st control.Status) bool {
			return st.Video != nil && st.Video.TargetBitrate > 0 && st.Video.TargetBitrate <= link1*1000*9/10
		})
	t.Logf("1 Mbit/s + 10 %% loss: estimate %d bit/s after %v, sending %s", st.Video.TargetBitrate,
		time.Since(limited).Round(100*time.Millisecond), st.Video.Sending())
	early, _ := tbfStats(lab.DeviceNS)
	// The link's drops over the next 5 s of its own traffic, against those until the estimate
	// came down.
	testwait.For(t, "5 s more of the link's traffic", 30*time.Second, func() bool {
		c, err := tbfStats(lab.DeviceNS)
		return err == nil && c.bytes-early.bytes >= int64(link1*1000/8*5*8/10) // 80 % of 5 s at the link rate
	})
	late, _ := tbfStats(lab.DeviceNS)
	dropEarly := float64(early.dropped-first.dropped) / float64(max(early.packets-first.packets+early.dropped-first.dropped, 1))
	dropLate := float64(late.dropped-early.dropped) / float64(max(late.packets-early.packets+late.dropped-early.dropped, 1))
	t.Logf("the link dropped %.1f %% of the device's packets until the estimate came down, %.1f %% after", 100*dropEarly, 100*dropLate)
	if !(dropLate < dropEarly) && dropLate > 0.01 {
		t.Errorf("the link's drops did not fall: %.1f %% then %.1f %%", 100*dropEarly, 100*dropLate)
	}
	if st := status(); st.Video.TargetBitrate > link1*1000*9/10 {
		t.Errorf("the estimate rose back over 90 %% of the link: %d bit/s", st.Video.TargetBitrate)
	}

	// 5 Mbit/s, no loss: every layer again.
	lab.Device.Clear()
	lab.Device.Rate(5000)
	raised := time.Now()
	st = roomboxtest.WaitStatus(t, bin, d.StateDir, "every layer back on a 5 Mbit/s link", 30*time.Second,
		func(st control.Status) bool { return st.Video.Sending() == "f,h,q" })
	t.Logf("5 Mbit/s: every layer back after %v, estimate %d bit/s", time.Since(raised).Round(100*time.Millisecond), st.Video.TargetBitrate)

	// 300 kbit/s: the lowest layer alone, the microphone whole.
	lab.Device.Rate(300)
	lowered := time.Now()
	st = roomboxtest.WaitStatus(t, bin, d.StateDir, "the lowest layer alone on 300 kbit/s", 30*time.Second,
		func(st control.Status) bool { return st.Video.Sending() == "q" })
	t.Logf("300 kbit/s: q alone after %v, estimate %d bit/s", time.Since(lowered).Round(100*time.Millisecond), st.Video.TargetBitrate)
	// Once the link has carried a second of traffic without a drop (the queue the higher
	// rates left behind drained), three seconds of the microphone at the viewer.
	settled, _ := tbfStats(lab.DeviceNS)
	testwait.For(t, "a second of the 300 kbit/s link without a drop", 30*time.Second, func() bool {
		c, err := tbfStats(lab.DeviceNS)
		if err != nil {
			return false
		}
		if c.dropped != settled.dropped {
			settled = c
			return false
		}
		return c.bytes-settled.bytes >= 300*1000/8/2 // half the link's second: it is not full
	})
	mic, _ := probe.Wait(t, "the box's microphone", 10*time.Second, 0, func(l lkprobetest.Line) bool {
		return l.Event == "track" && l.Kind == "audio"
	})
	from := len(probe.Lines())
	for range 3 {
		l, at := probe.Wait(t, "a second of the microphone", 10*time.Second, from, func(l lkprobetest.Line) bool {
			return l.Event == "stats" && l.SID == mic.SID
		})
		if l.Packets < 48 {
			t.Errorf("at 300 kbit/s the viewer got %d microphone packets in a second, want 50 (48 with jitter)", l.Packets)
		}
		from = at + 1
	}
}
