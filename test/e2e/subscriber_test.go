package e2e

import (
	"context"
	"math"
	"roombox/internal/testkit/ffmpegtest"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
	"gopkg.in/hraban/opus.v2"

	"roombox/hal/sim"
	"roombox/signaling"
)

// subscriber is a second participant in the room, built on our own signaling client in
// subscribe mode: it collects the device's H.264 access units and decodes its Opus.
type subscriber struct {
	t    testing.TB
	sess *signaling.Session
	wg   sync.WaitGroup

	mu         sync.Mutex
	videoAUs   []accessUnit
	firstKeyAt time.Time
	audio      []audioWindow
	tracks     map[string]bool // kinds seen ("video", "audio")
	identities map[string]bool
}

type accessUnit struct {
	data   []byte
	at     time.Time
	idr    bool
	hasSPS bool
	hasPPS bool
}

// audioWindow is one decoded Opus packet: its 440 Hz energy relative to full scale.
type audioWindow struct {
	at       time.Time
	toneDBFS float64
	rmsDBFS  float64
}

func joinSubscriber(t testing.TB, url, token string) *subscriber {
	t.Helper()
	s := &subscriber{t: t, tracks: map[string]bool{}, identities: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess, err := signaling.Connect(ctx, url, token, signaling.Options{
		AutoSubscribe: true,
		OnTrack:       s.onTrack,
	})
	if err != nil {
		t.Fatalf("subscriber join: %v", err)
	}
	s.sess = sess
	t.Cleanup(s.close)
	return s
}

func (s *subscriber) close() {
	_ = s.sess.Close()
	s.wg.Wait()
}

func (s *subscriber) onTrack(rt *signaling.RemoteTrack) {
	s.mu.Lock()
	s.tracks[rt.Track.Kind().String()] = true
	s.identities[rt.Identity] = true
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		switch rt.Track.Kind() {
		case webrtc.RTPCodecTypeVideo:
			s.readVideo(rt)
		case webrtc.RTPCodecTypeAudio:
			s.readAudio(rt)
		}
	}()
}

// readVideo reassembles access units; it ends when the track ends (session closed).
func (s *subscriber) readVideo(rt *signaling.RemoteTrack) {
	sb := samplebuilder.New(256, &codecs.H264Packet{}, rt.Track.Codec().ClockRate)
	_ = rt.RequestKeyframe()
	for {
		pkt, _, err := rt.Track.ReadRTP()
		if err != nil {
			return
		}
		sb.Push(pkt)
		for smp := sb.Pop(); smp != nil; smp = sb.Pop() {
			au := accessUnit{data: smp.Data, at: time.Now()}
			for _, typ := range nalTypes(smp.Data) {
				switch typ {
				case 5:
					au.idr = true
				case 7:
					au.hasSPS = true
				case 8:
					au.hasPPS = true
				}
			}
			s.mu.Lock()
			if au.idr && s.firstKeyAt.IsZero() {
				s.firstKeyAt = au.at
			}
			s.videoAUs = append(s.videoAUs, au)
			s.mu.Unlock()
		}
	}
}

func (s *subscriber) readAudio(rt *signaling.RemoteTrack) {
	dec, err := opus.NewDecoder(48000, 1)
	if err != nil {
		s.t.Errorf("opus decoder: %v", err)
		return
	}
	pcm := make([]int16, 5760)
	for {
		pkt, _, err := rt.Track.ReadRTP()
		if err != nil {
			return
		}
		if len(pkt.Payload) == 0 {
			continue
		}
		n, err := dec.Decode(pkt.Payload, pcm)
		if err != nil {
			s.t.Errorf("opus decode: %v", err)
			return
		}
		w := audioWindow{at: time.Now(), toneDBFS: sim.ToneDBFS(pcm[:n], 440, 48000), rmsDBFS: rmsDBFS(pcm[:n])}
		s.mu.Lock()
		s.audio = append(s.audio, w)
		s.mu.Unlock()
	}
}

// nalTypes lists the NAL unit types of an Annex-B access unit.
func nalTypes(au []byte) []byte {
	var types []byte
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 {
			types = append(types, au[i+3]&0x1f)
			i += 3
		}
	}
	return types
}

func rmsDBFS(pcm []int16) float64 {
	var sum float64
	for _, v := range pcm {
		f := float64(v) / 32768
		sum += f * f
	}
	return 20 * math.Log10(math.Sqrt(sum/float64(max(len(pcm), 1)))+1e-12)
}

func (s *subscriber) snapshot() (aus []accessUnit, audio []audioWindow, firstKey time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]accessUnit(nil), s.videoAUs...), append([]audioWindow(nil), s.audio...), s.firstKeyAt
}

// picture is one decoded picture a subscriber received: its luma plane and size.
type picture struct {
	gray          []byte
	width, height int
}

// decodePictures decodes aus from their first IDR on with ffmpeg, each run of one size at its
// size: the size is the SPS's of the IDR that starts the run (ffprobe). A subscriber of a
// simulcast track gets the layer the SFU picks for it, which can change at an IDR (it starts
// lower, or moves down while its downlink looks short on a busy machine), and a decoder
// writes one size at a time.
func decodePictures(aus []accessUnit) ([]picture, error) {
	var pics []picture
	var run []byte
	w, h := 0, 0
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		frames, err := ffmpegtest.DecodeGray(run, w, h)
		for _, y := range frames {
			pics = append(pics, picture{gray: y, width: w, height: h})
		}
		run = run[:0]
		return err
	}
	for _, au := range aus[max(firstIDR(aus), 0):] {
		if au.idr && au.hasSPS {
			s, err := ffmpegtest.Probe(au.data)
			if err != nil {
				return nil, err
			}
			if s.Width != w || s.Height != h {
				if err := flush(); err != nil {
					return nil, err
				}
				w, h = s.Width, s.Height
			}
		}
		if w > 0 {
			run = append(run, au.data...)
		}
	}
	return pics, flush()
}
