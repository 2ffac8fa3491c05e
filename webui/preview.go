package webui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"roombox/internal/jsonapi"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"roombox/signaling"
)

// maxPreviews is how many browsers may watch the preview at once; each costs an SRTP
// stream of the device's upload.
const maxPreviews = 2

// ErrPreviewBusy is returned when maxPreviews previews are open already: 503.
var ErrPreviewBusy error = busyError("webui: preview: too many previews open")

// busyError is a resource in use; the API answers it 503 (jsonapi.Status).
type busyError string

func (e busyError) Error() string     { return string(e) }
func (e busyError) Unavailable() bool { return true }

// previewer answers the page's WebRTC offers with the device's own local tracks, so a
// preview shows exactly the samples that leave the device (mute and camera off included),
// straight from the device with no SFU. It owns the peer connections and their RTCP
// readers; close ends them all and waits.
type previewer struct {
	log      *slog.Logger
	video    webrtc.TrackLocal
	audio    webrtc.TrackLocal
	onRTCP   func([]rtcp.Packet) // the video's RTCP: keyframe on PLI/FIR
	keyframe func()
	watching func(bool) // told under mu, in order, when the first opens and the last closes

	mu     sync.Mutex
	pcs    map[*webrtc.PeerConnection]bool
	closed bool
	wg     sync.WaitGroup
}

// newPreviewer serves previews of the video and audio tracks; either is nil when the board
// lacks that part.
func newPreviewer(log *slog.Logger, m PreviewMedia) *previewer {
	return &previewer{log: log, video: m.Video, audio: m.Audio, onRTCP: m.OnRTCP, keyframe: m.Keyframe,
		watching: m.Watching, pcs: map[*webrtc.PeerConnection]bool{}}
}

// answer takes a browser's offer SDP (recvonly video and audio) and returns the complete answer
// (all candidates gathered: no trickle, one API call). With loopback the viewer is on this
// host and only loopback candidates are offered.
func (p *previewer) answer(ctx context.Context, sdp string, loopback bool) (webrtc.SessionDescription, error) {
	if sdp == "" {
		return webrtc.SessionDescription{}, jsonapi.BadRequest(errors.New(`webui: preview: missing "sdp"`))
	}
	api, err := signaling.NewPreviewAPI(loopback)
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("webui: preview: %w", err)
	}
	if err := p.add(pc); err != nil {
		_ = pc.Close()
		return webrtc.SessionDescription{}, err
	}
	answer, err := p.negotiate(ctx, pc, webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
	if err != nil {
		p.remove(pc)
		return webrtc.SessionDescription{}, err
	}
	return answer, nil
}

// add registers pc unless the previewer is closed or full.
func (p *previewer) add(pc *webrtc.PeerConnection) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return errors.New("webui: preview: stopping")
	case len(p.pcs) >= maxPreviews:
		return fmt.Errorf("%w (%d)", ErrPreviewBusy, maxPreviews)
	}
	p.pcs[pc] = true
	if len(p.pcs) == 1 {
		p.watching(true)
	}
	return nil
}

// remove closes pc and forgets it; safe to call more than once.
func (p *previewer) remove(pc *webrtc.PeerConnection) {
	p.mu.Lock()
	known := p.pcs[pc]
	delete(p.pcs, pc)
	if known && len(p.pcs) == 0 {
		p.watching(false)
	}
	p.mu.Unlock()
	if known {
		if err := pc.Close(); err != nil {
			p.log.Warn("preview: close", "err", err)
		}
	}
}

func (p *previewer) negotiate(ctx context.Context, pc *webrtc.PeerConnection, offer webrtc.SessionDescription) (webrtc.SessionDescription, error) {
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Info("preview", "state", s.String())
		switch s {
		case webrtc.PeerConnectionStateConnected:
			p.keyframe() // the viewer's first picture without waiting for the next IDR
		case webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			// Closed: the viewer closed its side (a page reload); its place is free again.
			// Closing from inside pion's callback would wait on itself; an owned goroutine does it.
			p.goOwned(func() { p.remove(pc) })
		}
	})
	if err := pc.SetRemoteDescription(offer); err != nil {
		return webrtc.SessionDescription{}, jsonapi.BadRequest(fmt.Errorf("webui: preview: bad offer: %w", err))
	}
	for _, tr := range []webrtc.TrackLocal{p.video, p.audio} {
		if tr == nil {
			continue // the board has no such part
		}
		sender, err := pc.AddTrack(tr)
		if err != nil {
			return webrtc.SessionDescription{}, fmt.Errorf("webui: preview: add %s track: %w", tr.Kind(), err)
		}
		// RTCP must be read for the interceptors (NACK, reports) to work; PLIs ask for a keyframe.
		handle := func([]rtcp.Packet) {}
		if tr == p.video {
			handle = p.onRTCP
		}
		p.goOwned(func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return // the peer connection closed
				}
				handle(pkts)
			}
		})
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return webrtc.SessionDescription{}, jsonapi.BadRequest(fmt.Errorf("webui: preview: no answer to this offer (want recvonly H.264 video and Opus audio): %w", err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("webui: preview: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return webrtc.SessionDescription{}, fmt.Errorf("webui: preview: gathering candidates: %w", ctx.Err())
	}
	return *pc.LocalDescription(), nil
}

// goOwned runs f on a goroutine close waits for; once closing, it does nothing: close
// itself closes every peer connection.
func (p *previewer) goOwned(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// close ends every preview and waits for their goroutines; answer fails after it.
func (p *previewer) close() {
	p.mu.Lock()
	p.closed = true
	pcs := make([]*webrtc.PeerConnection, 0, len(p.pcs))
	for pc := range p.pcs {
		pcs = append(pcs, pc)
	}
	p.mu.Unlock()
	for _, pc := range pcs {
		p.remove(pc)
	}
	p.wg.Wait()
}
