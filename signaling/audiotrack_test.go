package signaling

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// received is one packet as the far end got it.
type received struct {
	n            int // the sample's number, carried in its payload
	ts           uint32
	seq          uint16
	marker       bool
	level        uint8
	voice, found bool // the extension's values, and whether it was there
}

// audioPair connects a publisher-side peer connection carrying an AudioTrack to a receiver
// that registers the audio-level extension or not, and returns what the receiver gets.
func audioPair(t *testing.T, receiverLevels bool) (*AudioTrack, <-chan received) {
	t.Helper()
	newPC := func(m *webrtc.MediaEngine) *webrtc.PeerConnection {
		ir := &interceptor.Registry{}
		if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
			t.Fatal(err)
		}
		api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(settingEngine(true)))
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		return pc
	}
	sm, err := mediaEngine(false)
	if err != nil {
		t.Fatal(err)
	}
	rm := &webrtc.MediaEngine{}
	if err := rm.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: Opus, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	if receiverLevels {
		if err := rm.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	send, recv := newPC(sm), newPC(rm)
	track := NewAudioTrack("microphone", "roombox")
	sender, err := send.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	go func() { // RTCP must be read for the interceptors to run; ends with the connection
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	got := make(chan received, 256)
	recv.OnTrack(func(tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		var id uint8
		for _, e := range r.GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI {
				id = uint8(e.ID)
			}
		}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				close(got)
				return
			}
			rc := received{n: int(binary.BigEndian.Uint16(p.Payload)), ts: p.Timestamp, seq: p.SequenceNumber, marker: p.Marker}
			if b := p.GetExtension(id); id != 0 && b != nil {
				var ext rtp.AudioLevelExtension
				if err := ext.Unmarshal(b); err != nil {
					t.Errorf("packet %d: audio level extension: %v", rc.n, err)
				}
				rc.level, rc.voice, rc.found = ext.Level, ext.Voice, true
			}
			select {
			case got <- rc:
			default: // the test has what it needs
			}
		}
	})
	offer, err := send.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(send)
	if err := send.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := recv.SetRemoteDescription(*send.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := recv.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(recv)
	if err := recv.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := send.SetRemoteDescription(*recv.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	return track, got
}

// sample n: a payload naming n; every 10th follows 2 frames DTX left unsent.
func numbered(n int) media.Sample {
	s := media.Sample{Data: binary.BigEndian.AppendUint16(nil, uint16(n)), Duration: 20 * time.Millisecond}
	if n%10 == 0 {
		s.PrevDroppedPackets = 2
	}
	return s
}

// collect writes numbered samples (with levels n%100, voice on even n, if levels) until want
// packets have arrived, one every 5 ms at most 2000 times: the first are lost while the
// connection comes up.
func collect(t *testing.T, track *AudioTrack, got <-chan received, levels bool, want int) []received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var out []received
	for n := 0; len(out) < want; {
		select {
		case r, ok := <-got:
			if !ok {
				t.Fatalf("the receiver's track ended after %d packets", len(out))
			}
			out = append(out, r)
		case <-tick.C:
			if n == 2000 {
				t.Fatalf("%d samples written, %d packets arrived", n, len(out))
			}
			var err error
			if levels {
				err = track.WriteLevelSample(numbered(n), uint8(n%100), n%2 == 0)
			} else {
				err = track.WriteSample(numbered(n))
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		case <-ctx.Done():
			t.Fatalf("%d packets arrived", len(out))
		}
	}
	return out
}

// Every packet carries the level and voice flag it was written with, under the id the
// connection negotiated; timestamps step by a frame per sample and by the frames DTX
// skipped, sequence numbers by one per packet, and the first packet after skipped frames
// has the marker bit.
func TestAudioTrackLevels(t *testing.T) {
	track, got := audioPair(t, true)
	pkts := collect(t, track, got, true, 60)
	for i, r := range pkts {
		if !r.found || r.level != uint8(r.n%100) || r.voice != (r.n%2 == 0) {
			t.Fatalf("sample %d: extension found %v, level %d voice %v; want level %d voice %v", r.n, r.found, r.level, r.voice, r.n%100, r.n%2 == 0)
		}
		if r.marker != (r.n%10 == 0) {
			t.Errorf("sample %d: marker %v", r.n, r.marker)
		}
		if i == 0 {
			continue
		}
		p := pkts[i-1]
		frames := uint32(r.n - p.n)
		for k := p.n + 1; k <= r.n; k++ {
			frames += uint32(numbered(k).PrevDroppedPackets)
		}
		if r.ts-p.ts != 960*frames || r.seq-p.seq != uint16(r.n-p.n) {
			t.Fatalf("samples %d -> %d: timestamp +%d, sequence +%d; want +%d and +%d", p.n, r.n, r.ts-p.ts, r.seq-p.seq, 960*frames, r.n-p.n)
		}
	}
}

// A connection that did not negotiate the extension gets the packets without it; a sample
// written without a level carries none either.
func TestAudioTrackWithoutLevels(t *testing.T) {
	track, got := audioPair(t, false)
	for _, r := range collect(t, track, got, true, 20) {
		if r.found {
			t.Fatalf("sample %d carries a level the receiver did not negotiate", r.n)
		}
	}
	track, got = audioPair(t, true)
	for _, r := range collect(t, track, got, false, 20) {
		if r.found {
			t.Fatalf("sample %d written without a level carries one", r.n)
		}
	}
}
