package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// The lines lkprobe prints (see the package comment).
type (
	joinedEvent struct {
		Event    string `json:"event"`
		Room     string `json:"room"`
		Identity string `json:"identity"`
	}
	trackEvent struct {
		Event       string  `json:"event"`
		Participant string  `json:"participant"`
		SID         string  `json:"sid"`
		Kind        string  `json:"kind"`
		Source      string  `json:"source"`
		MimeType    string  `json:"mime"`
		Width       uint32  `json:"width,omitempty"`
		Height      uint32  `json:"height,omitempty"`
		Simulcast   bool    `json:"simulcast"`
		Muted       bool    `json:"muted"`
		SSRC        uint32  `json:"ssrc"` // of the stream this subscriber receives
		Layers      []layer `json:"layers,omitempty"`
	}
	layer struct {
		Quality string `json:"quality"`
		Width   uint32 `json:"width"`
		Height  uint32 `json:"height"`
		SSRC    uint32 `json:"ssrc"`
		Bitrate uint32 `json:"bitrate,omitempty"`
	}
	statsEvent struct {
		Event     string `json:"event"`
		SID       string `json:"sid"`
		Kind      string `json:"kind"`
		Width     int    `json:"width,omitempty"`
		Height    int    `json:"height,omitempty"`
		Packets   int    `json:"packets"`
		Frames    int    `json:"frames"`
		Keyframes int    `json:"keyframes"`
		Bytes     int    `json:"bytes"` // RTP payload bytes
	}
	keyframeEvent struct {
		Event    string  `json:"event"`
		SID      string  `json:"sid"`
		Width    int     `json:"width"`
		Height   int     `json:"height"`
		Bytes    int     `json:"bytes"`
		PLI      int     `json:"pli,omitempty"`
		PLIToIDR float64 `json:"pli_to_idr_ms,omitempty"`
		Between  int     `json:"frames_after_pli,omitempty"` // other frames received between
	}
	pliEvent struct {
		Event string `json:"event"`
		SID   string `json:"sid"`
		N     int    `json:"n"`
	}
	errorEvent struct {
		Event string `json:"event"`
		Error string `json:"error"`
	}
	leftEvent struct {
		Event  string `json:"event"`
		Reason string `json:"reason"`
	}
)

// output writes one JSON object a line, from any goroutine.
type output struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newOutput(w io.Writer) *output { return &output{enc: json.NewEncoder(w)} }

func (o *output) emit(v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.enc.Encode(v)
}

// probe subscribes to the tracks it is after and owns one receiver per subscribed track.
type probe struct {
	out         *output
	participant string // "" for anyone
	audio       bool

	mu      sync.Mutex
	quality *livekit.VideoQuality // asked for every video track, when set
	dims    *[2]uint32
	tracks  map[string]*receiver // by track sid
	wg      sync.WaitGroup
}

func newProbe(out *output, participant string, audio bool) *probe {
	return &probe{out: out, participant: participant, audio: audio, tracks: map[string]*receiver{}}
}

// wants reports whether the probe subscribes to pub.
func (p *probe) wants(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) bool {
	if p.participant != "" && rp.Identity() != p.participant {
		return false
	}
	switch pub.Source() {
	case livekit.TrackSource_CAMERA:
		return true
	case livekit.TrackSource_MICROPHONE:
		return p.audio
	}
	return false
}

func (p *probe) onPublished(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if !p.wants(pub, rp) {
		return
	}
	if err := pub.SetSubscribed(true); err != nil {
		p.out.emit(errorEvent{Event: "error", Error: fmt.Sprintf("subscribe %s: %v", pub.SID(), err)})
	}
}

func (p *probe) onSubscribed(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if !p.wants(pub, rp) {
		return
	}
	r := &receiver{out: p.out, sid: pub.SID(), kind: track.Kind().String(), track: track, pub: pub, rp: rp}
	p.mu.Lock()
	p.tracks[r.sid] = r
	p.applySettingsLocked(r)
	p.mu.Unlock()
	p.out.emit(r.describe())
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		r.run()
	}()
}

// applySettingsLocked asks the server for the quality and size set so far, on a video track.
func (p *probe) applySettingsLocked(r *receiver) {
	if r.kind != "video" {
		return
	}
	if p.quality != nil {
		if err := r.pub.SetVideoQuality(*p.quality); err != nil {
			p.out.emit(errorEvent{Event: "error", Error: err.Error()})
		}
	}
	if p.dims != nil {
		r.pub.SetVideoDimensions(p.dims[0], p.dims[1])
	}
}

// command carries out one stdin command (other than quit).
func (p *probe) command(line string) error {
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch f[0] {
	case "pli":
		for _, r := range p.tracks {
			if r.kind == "video" {
				r.sendPLI()
			}
		}
	case "quality":
		if len(f) != 2 {
			return fmt.Errorf("quality: want LOW, MEDIUM or HIGH")
		}
		q, err := parseQuality(f[1])
		if err != nil {
			return err
		}
		p.quality = &q
		for _, r := range p.tracks {
			p.applySettingsLocked(r)
		}
	case "dimensions":
		w, h, err := parseDimensions(f[1:])
		if err != nil {
			return err
		}
		p.dims = &[2]uint32{w, h}
		for _, r := range p.tracks {
			p.applySettingsLocked(r)
		}
	case "info":
		for _, r := range p.tracks {
			p.out.emit(r.describe())
		}
	default:
		return fmt.Errorf("unknown command %q (pli, quality Q, dimensions W H, info, quit)", f[0])
	}
	return nil
}

// wait waits for the receivers, which end when their tracks do (the room disconnected).
func (p *probe) wait() { p.wg.Wait() }

// receiver reads one subscribed track and counts what arrives.
type receiver struct {
	out   *output
	sid   string
	kind  string // "video" or "audio"
	track *webrtc.TrackRemote
	pub   *lksdk.RemoteTrackPublication
	rp    *lksdk.RemoteParticipant

	mu    sync.Mutex
	sec   statsEvent // this second's counts
	w, h  int        // from the last SPS
	au    accessUnit // the one being received
	pliN  int        // PLIs sent
	pliAt time.Time  // when the last was sent; zero once answered
	pliFr int        // frames completed since, before the answer
}

// accessUnit is what lkprobe tracks of the video frame being received (one RTP timestamp).
type accessUnit struct {
	started bool
	ts      uint32
	first   time.Time // its first packet's arrival
	idr     bool
	bytes   int
}

// describe is the track as the server describes it.
func (r *receiver) describe() trackEvent {
	ti := r.pub.TrackInfo()
	ev := trackEvent{
		Event: "track", Participant: r.rp.Identity(), SID: r.sid, Kind: r.kind,
		Source: ti.GetSource().String(), MimeType: ti.GetMimeType(), Width: ti.GetWidth(), Height: ti.GetHeight(),
		Simulcast: ti.GetSimulcast(), Muted: ti.GetMuted(), SSRC: uint32(r.track.SSRC()),
	}
	layers := ti.GetLayers()
	if len(layers) == 0 && len(ti.GetCodecs()) > 0 {
		layers = ti.GetCodecs()[0].GetLayers()
	}
	for _, l := range layers {
		ev.Layers = append(ev.Layers, layer{
			Quality: l.GetQuality().String(), Width: l.GetWidth(), Height: l.GetHeight(),
			SSRC: l.GetSsrc(), Bitrate: l.GetBitrate(),
		})
	}
	return ev
}

// run reads packets until the track ends, printing the counts once a second.
func (r *receiver) run() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				r.mu.Lock()
				s := r.sec
				s.Event, s.SID, s.Kind, s.Width, s.Height = "stats", r.sid, r.kind, r.w, r.h
				r.sec = statsEvent{}
				r.mu.Unlock()
				r.out.emit(s)
			}
		}
	}()
	defer wg.Wait()
	defer close(done)

	for {
		pkt, _, err := r.track.ReadRTP()
		if err != nil {
			return
		}
		r.packet(pkt, time.Now())
	}
}

// packet counts one RTP packet; for video it follows access units by RTP timestamp, reads
// the size from SPSs, and reports each keyframe when its last packet (marker) arrives.
func (r *receiver) packet(pkt *rtp.Packet, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sec.Packets++
	r.sec.Bytes += len(pkt.Payload)
	if r.kind != "video" {
		r.sec.Frames++
		return
	}
	if !r.au.started || pkt.Timestamp != r.au.ts {
		r.au = accessUnit{started: true, ts: pkt.Timestamp, first: now}
	}
	r.au.bytes += len(pkt.Payload)
	rtpNALs(pkt.Payload, func(typ byte, nal []byte) {
		switch typ {
		case nalSPS:
			if s, err := parseSPS(nal); err == nil {
				r.w, r.h = s.Width, s.Height
			}
		case nalIDR:
			r.au.idr = true
		}
	})
	if !pkt.Marker {
		return
	}
	r.sec.Frames++
	r.au.started = false
	answers := r.au.idr && !r.pliAt.IsZero() && r.au.first.After(r.pliAt)
	if !answers && !r.pliAt.IsZero() {
		r.pliFr++
	}
	if !r.au.idr {
		return
	}
	r.sec.Keyframes++
	ev := keyframeEvent{Event: "keyframe", SID: r.sid, Width: r.w, Height: r.h, Bytes: r.au.bytes}
	if answers {
		ev.PLI, ev.Between = r.pliN, r.pliFr
		ev.PLIToIDR = float64(r.au.first.Sub(r.pliAt).Microseconds()) / 1000
		r.pliAt = time.Time{}
	}
	r.out.emit(ev)
}

// sendPLI asks the publisher for a keyframe through the server, for this subscriber's SSRC.
func (r *receiver) sendPLI() {
	r.mu.Lock()
	r.pliN++
	n := r.pliN
	r.mu.Unlock()
	r.out.emit(pliEvent{Event: "pli", SID: r.sid, N: n})
	r.mu.Lock()
	r.pliAt, r.pliFr = time.Now(), 0
	r.mu.Unlock()
	r.rp.WritePLI(r.track.SSRC())
}
