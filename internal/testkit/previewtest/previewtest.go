// Package previewtest is a Go viewer of the control page's preview, for tests: it signs in
// like the page, offers recvonly video and audio, and keeps what arrives, so a test can
// measure exactly what leaves the device: decoded pictures (luma) and decoded audio (PCM),
// each with its arrival time and RTP timestamp.
package previewtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"roombox/internal/testkit/ffmpegtest"
	"roombox/media"
	"roombox/signaling"
)

// Session is a signed-in client of the control page.
type Session struct {
	Base string // the page's URL, http://host:port
	HC   *http.Client
	CSRF string
}

// Login signs in to the control page at base with password (the setup code or the admin
// password).
func Login(ctx context.Context, base, password string) (*Session, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("previewtest: %w", err)
	}
	s := &Session{Base: strings.TrimSuffix(base, "/"), HC: &http.Client{Jar: jar}}
	var reply struct{ CSRF string }
	if err := s.Call(ctx, http.MethodPost, "/api/login", map[string]string{"password": password}, &reply); err != nil {
		return nil, err
	}
	s.CSRF = reply.CSRF
	return s, nil
}

// Call makes one API call with the session's cookie and CSRF token; in (if not nil) is
// sent as JSON and the reply decoded into out (if not nil). A reply other than 200 is an
// error carrying the device's message.
func (s *Session) Call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("previewtest: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Base+path, body)
	if err != nil {
		return fmt.Errorf("previewtest: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.CSRF != "" {
		req.Header.Set("X-CSRF-Token", s.CSRF)
	}
	resp, err := s.HC.Do(req)
	if err != nil {
		return fmt.Errorf("previewtest: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("previewtest: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = string(bytes.TrimSpace(data))
		}
		return fmt.Errorf("previewtest: %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("previewtest: %s %s: decode reply: %w", method, path, err)
		}
	}
	return nil
}

// VideoFrame is one decoded picture of the preview.
type VideoFrame struct {
	Gray    []byte // luma, Width*Height bytes
	Width   int
	Height  int
	At      time.Time // when its last packet arrived
	RTPTime uint32
}

// AudioChunk is one decoded Opus packet of the preview: 48 kHz mono.
type AudioChunk struct {
	PCM     []int16
	At      time.Time
	RTPTime uint32
}

// accessUnit is one H.264 access unit in Annex-B form.
type accessUnit struct {
	data    []byte
	at      time.Time
	rtpTime uint32
	idr     bool
}

// Viewer receives the device's preview over WebRTC, as the page's browser does.
type Viewer struct {
	pc        *webrtc.PeerConnection
	wg        sync.WaitGroup
	connected chan struct{}

	// decMu orders VideoFrames calls; decoded are the pictures of aus decoded so far.
	decMu   sync.Mutex
	decoded []VideoFrame

	mu       sync.Mutex
	aus      []accessUnit // from the first keyframe on
	audio    []AudioChunk
	videoPkt int
	audioPkt int
	err      error // the first receive error other than the end of the track
	closed   bool  // no more readers start
}

// Watch opens a preview: offer (recvonly video and audio, loopback candidates), one POST
// /api/preview, answer. Close ends it.
func (s *Session) Watch(ctx context.Context) (*Viewer, error) {
	api, err := signaling.NewPreviewAPI(true)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("previewtest: %w", err)
	}
	v := &Viewer{pc: pc, connected: make(chan struct{})}
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(v.connected) })
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.closed {
			return
		}
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				v.readVideo(tr)
			} else {
				v.readAudio(tr)
			}
		}()
	})
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			v.Close()
			return nil, fmt.Errorf("previewtest: %w", err)
		}
	}
	if err := v.negotiate(ctx, s); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

func (v *Viewer) negotiate(ctx context.Context, s *Session) error {
	offer, err := v.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("previewtest: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(v.pc)
	if err := v.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("previewtest: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fmt.Errorf("previewtest: gathering: %w", ctx.Err())
	}
	var answer struct{ Type, SDP string }
	req := map[string]string{"type": "offer", "sdp": v.pc.LocalDescription().SDP}
	if err := s.Call(ctx, http.MethodPost, "/api/preview", req, &answer); err != nil {
		return err
	}
	if answer.Type != "answer" {
		return fmt.Errorf("previewtest: reply type %q, want answer", answer.Type)
	}
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		return fmt.Errorf("previewtest: %w", err)
	}
	return nil
}

// Connected is closed once the peer connection is up.
func (v *Viewer) Connected() <-chan struct{} { return v.connected }

func (v *Viewer) fail(err error) {
	v.mu.Lock()
	if v.err == nil {
		v.err = err
	}
	v.mu.Unlock()
}

// readVideo reassembles access units until the track ends; units that cannot be decoded
// are dropped: those before the first keyframe, and those after a lost packet until the
// next keyframe, which a PLI asks for at once. A packet missing for longer than
// maxPacketWait is given up: a 720p IDR is a burst of ~80 packets that a busy machine's
// socket buffer can overflow with, and while the camera is off a frame comes once a second,
// so waiting for the builder's 256 later packets would stall the viewer for minutes.
func (v *Viewer) readVideo(tr *webrtc.TrackRemote) {
	const maxPacketWait = 500 * time.Millisecond
	sb := samplebuilder.New(256, &codecs.H264Packet{}, tr.Codec().ClockRate, samplebuilder.WithMaxTimeDelay(maxPacketWait))
	broken := false
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		v.mu.Lock()
		v.videoPkt++
		v.mu.Unlock()
		sb.Push(pkt)
		for smp := sb.Pop(); smp != nil; smp = sb.Pop() {
			idr := hasIDR(smp.Data)
			switch {
			case idr:
				broken = false
			case smp.PrevDroppedPackets > 0 && !broken:
				broken = true
				// A PLI that fails to go leaves the viewer to the sender's own next IDR.
				_ = v.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
			}
			v.mu.Lock()
			if !broken && (len(v.aus) > 0 || idr) {
				v.aus = append(v.aus, accessUnit{data: smp.Data, at: time.Now(), rtpTime: smp.PacketTimestamp, idr: idr})
			}
			v.mu.Unlock()
		}
	}
}

func (v *Viewer) readAudio(tr *webrtc.TrackRemote) {
	dec, err := media.NewOpusDecoder()
	if err != nil {
		v.fail(err)
		return
	}
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if len(pkt.Payload) == 0 {
			continue
		}
		pcm, err := dec.Decode(pkt.Payload)
		if err != nil {
			v.fail(err)
			return
		}
		v.mu.Lock()
		v.audioPkt++
		v.audio = append(v.audio, AudioChunk{PCM: append([]int16(nil), pcm...), At: time.Now(), RTPTime: pkt.Timestamp})
		v.mu.Unlock()
	}
}

// hasIDR reports whether an Annex-B access unit holds an IDR slice.
func hasIDR(au []byte) bool {
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 {
			if au[i+3]&0x1f == 5 {
				return true
			}
			i += 2
		}
	}
	return false
}

// Packets returns how many video and audio RTP packets arrived.
func (v *Viewer) Packets() (video, audio int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.videoPkt, v.audioPkt
}

// AccessUnits returns how many decodable access units arrived (from the first keyframe).
func (v *Viewer) AccessUnits() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.aus)
}

// VideoFrames returns the access units received so far decoded (w x h pictures, ffmpeg),
// one frame per unit. Units decoded by an earlier call are not decoded again: a new call
// decodes from the last IDR before the first new unit, so a test polling it costs at most
// a keyframe interval more than what arrived.
func (v *Viewer) VideoFrames(w, h int) ([]VideoFrame, error) {
	v.decMu.Lock()
	defer v.decMu.Unlock()
	v.mu.Lock()
	aus := v.aus // units are only appended: these stay as they are
	err := v.err
	v.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if len(aus) == 0 {
		return nil, errors.New("previewtest: no keyframe received yet")
	}
	if len(v.decoded) > 0 && (v.decoded[0].Width != w || v.decoded[0].Height != h) {
		v.decoded = nil
	}
	if from := len(v.decoded); from < len(aus) {
		idr := from
		for idr > 0 && !aus[idr].idr {
			idr--
		}
		var stream []byte
		for _, au := range aus[idr:] {
			stream = append(stream, au.data...)
		}
		pics, err := ffmpegtest.DecodeGray(stream, w, h)
		if err != nil {
			return nil, err
		}
		if len(pics) != len(aus)-idr {
			return nil, fmt.Errorf("previewtest: ffmpeg decoded %d pictures from %d access units", len(pics), len(aus)-idr)
		}
		for i, au := range aus[from:] {
			v.decoded = append(v.decoded, VideoFrame{Gray: pics[from-idr+i], Width: w, Height: h, At: au.at, RTPTime: au.rtpTime})
		}
	}
	return slices.Clone(v.decoded), nil
}

// Audio returns the audio decoded so far, in arrival order.
func (v *Viewer) Audio() ([]AudioChunk, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]AudioChunk(nil), v.audio...), v.err
}

// Close ends the preview and waits for the readers.
func (v *Viewer) Close() error {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	err := v.pc.Close()
	v.wg.Wait()
	if err != nil {
		return fmt.Errorf("previewtest: %w", err)
	}
	return nil
}
