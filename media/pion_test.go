package media

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"roombox/hal"
)

// h264Codec is what the device announces: constrained baseline, level 3.1.
var h264Codec = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeH264,
	ClockRate:   90000,
	SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
}

// encodedSamples returns 60 encoded 360p frames (the first an IDR) as samples.
func encodedSamples(b *testing.B) []media.Sample {
	frames := simFrames(b, 640, 360, 60)
	e := newX264(b, X264Config{EncoderConfig: hal.EncoderConfig{Width: 640, Height: 360, Bitrate: 500_000}})
	samples := make([]media.Sample, len(frames))
	for i, f := range frames {
		ef, err := e.Encode(f, false)
		if err != nil {
			b.Fatal(err)
		}
		samples[i] = media.Sample{Data: append([]byte(nil), ef.Data...), Duration: time.Second / 30}
	}
	return samples
}

// writeSamples writes b.N samples and reports packets per sample and allocations per
// packet (whole process: in the loopback case that includes pion's receiving side).
func writeSamples(b *testing.B, track *webrtc.TrackLocalStaticSample, samples []media.Sample, packets *atomic.Int64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs, p0 := ms.Mallocs, packets.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := track.WriteSample(samples[i%len(samples)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	n := packets.Load() - p0
	if n == 0 {
		b.Fatal("no RTP packets were written")
	}
	b.ReportMetric(float64(n)/float64(b.N), "packets/op")
	b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(n), "allocs/packet")
}

// BenchmarkPionSampleWrite measures what pion costs per RTP packet for our H.264 samples:
// "bound" binds the track to a counting stub (packetizer and track only); "loopback"
// sends through a real PeerConnection pair on 127.0.0.1 (interceptors, SRTP, UDP).
func BenchmarkPionSampleWrite(b *testing.B) {
	samples := encodedSamples(b)

	b.Run("bound", func(b *testing.B) {
		track, err := webrtc.NewTrackLocalStaticSample(h264Codec, "video", "roombox")
		if err != nil {
			b.Fatal(err)
		}
		var packets atomic.Int64
		if _, err := track.Bind(&stubContext{packets: &packets}); err != nil {
			b.Fatal(err)
		}
		writeSamples(b, track, samples, &packets)
	})

	b.Run("loopback", func(b *testing.B) {
		var packets atomic.Int64
		track := loopbackTrack(b, &packets)
		writeSamples(b, track, samples, &packets)
	})
}

// loopbackTrack connects two PeerConnections over loopback UDP and returns the sending
// side's track once media flows. Packets written by the sender are counted in packets.
func loopbackTrack(b *testing.B, packets *atomic.Int64) *webrtc.TrackLocalStaticSample {
	b.Helper()
	newPC := func(count bool) *webrtc.PeerConnection {
		m := &webrtc.MediaEngine{}
		if err := m.RegisterDefaultCodecs(); err != nil {
			b.Fatal(err)
		}
		ir := &interceptor.Registry{}
		if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
			b.Fatal(err)
		}
		if count {
			ir.Add(countFactory{packets})
		}
		var se webrtc.SettingEngine
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		return pc
	}
	send, recv := newPC(true), newPC(false)

	track, err := webrtc.NewTrackLocalStaticSample(h264Codec, "video", "roombox")
	if err != nil {
		b.Fatal(err)
	}
	sender, err := send.AddTrack(track)
	if err != nil {
		b.Fatal(err)
	}

	var wg sync.WaitGroup
	b.Cleanup(func() {
		_ = send.Close()
		_ = recv.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() { // RTCP must be read for the interceptors to run
		defer wg.Done()
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	flowing := make(chan struct{})
	var once sync.Once
	recv.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		once.Do(func() { close(flowing) })
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
		}
	})

	if err := signal(send, recv); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	key := media.Sample{Data: encodedSamples(b)[0].Data, Duration: time.Second / 30}
	for {
		if err := track.WriteSample(key); err != nil {
			b.Fatal(err)
		}
		select {
		case <-flowing:
			return track
		case <-ctx.Done():
			b.Fatal("media did not flow over loopback")
		case <-tick.C:
		}
	}
}

// signal does offer/answer between two PeerConnections with complete ICE gathering.
func signal(offerer, answerer *webrtc.PeerConnection) error {
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		return err
	}
	<-gathered
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		return err
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(answer); err != nil {
		return err
	}
	<-gathered
	if answerer.LocalDescription() == nil {
		return errors.New("no answer")
	}
	return offerer.SetRemoteDescription(*answerer.LocalDescription())
}

// countFactory makes interceptors that count the RTP packets a PeerConnection sends.
type countFactory struct{ packets *atomic.Int64 }

func (f countFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &countInterceptor{packets: f.packets}, nil
}

type countInterceptor struct {
	interceptor.NoOp
	packets *atomic.Int64
}

func (c *countInterceptor) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		c.packets.Add(1)
		return w.Write(h, payload, a)
	})
}

// stubContext binds a track without a PeerConnection; its stream counts packets.
type stubContext struct{ packets *atomic.Int64 }

func (c *stubContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: h264Codec, PayloadType: 102}}
}
func (c *stubContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c *stubContext) SSRC() webrtc.SSRC                                      { return 1 }
func (c *stubContext) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (c *stubContext) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c *stubContext) WriteStream() webrtc.TrackLocalWriter                   { return c }
func (c *stubContext) ID() string                                             { return "stub" }
func (c *stubContext) RTCPReader() interceptor.RTCPReader                     { return nil }

func (c *stubContext) WriteRTP(_ *rtp.Header, payload []byte) (int, error) {
	c.packets.Add(1)
	return len(payload), nil
}

func (c *stubContext) Write(b []byte) (int, error) {
	c.packets.Add(1)
	return len(b), nil
}
