package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"

	"roombox/hal"
	"roombox/hal/sim"
	"roombox/media"
	"roombox/signaling"
)

// Media settings of the simulated board (the default on a dev machine).
const (
	simWidth   = 640
	simHeight  = 360
	simFPS     = 30
	videoBPS   = 800_000
	audioBPS   = 32_000
	streamName = "roombox"
)

// daemon is the running appliance: it owns the board, the media pipelines, the room
// connection and the local servers, and implements Controller for them.
type daemon struct {
	log   *slog.Logger
	store *Store
	board *hal.Board
	video *media.Video
	audio *media.Audio
	venc  *media.X264

	videoTrack *webrtc.TrackLocalStaticSample
	audioTrack *webrtc.TrackLocalStaticSample

	room *roomLink

	mu    sync.Mutex
	cfg   Config
	info  TokenInfo // of cfg.Token
	saved SavedState
	led   bool
}

// Run runs the daemon until ctx ends: loads state, starts the board's media, joins the
// room when provisioned, and serves the LocalAPI and the control page.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, err := OpenStore(opts.StateDir)
	if err != nil {
		return err
	}
	d := &daemon{log: log, store: store}
	if err := d.load(); err != nil {
		return err
	}
	if d.board, err = openBoard(opts.Hal); err != nil {
		return err
	}
	defer d.board.Close()
	if err := d.setupMedia(); err != nil {
		return err
	}
	defer d.closeEncoders()
	// Mute is applied before any audio is read: a muted device is muted from its first sample.
	d.applyMute(d.saved.MicMuted)

	d.room = newRoomLink(d, log)
	web, err := newWebServer(d, store, opts.HTTPAddr, log)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	spawn := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	spawn("video", d.video.Run)
	spawn("audio", d.audio.Run)
	spawn("buttons", d.watchButtons)
	spawn("room", d.room.run)
	spawn("localapi", func(ctx context.Context) error { return ServeLocalAPI(ctx, store.Dir(), d, log) })
	spawn("http", web.serve)
	log.Info("roombox running", "hal", d.board.Name, "state_dir", store.Dir(), "http", web.addr())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
		log.Error("stopping", "err", runErr)
	}
	cancel()
	wg.Wait()
	return runErr
}

func (d *daemon) load() error {
	cfg, err := d.store.LoadConfig()
	if err != nil {
		return err
	}
	saved, err := d.store.LoadState()
	if err != nil {
		return err
	}
	d.cfg, d.saved = cfg, saved
	if cfg.Provisioned() {
		// A stored token that has expired still names the room; the connection attempt
		// reports the problem and the device keeps retrying.
		d.info, _ = parseAccessToken(cfg.Token, time.Now())
	}
	return nil
}

func openBoard(name string) (*hal.Board, error) {
	switch name {
	case "sim", "":
		return sim.NewBoard(sim.Config{Width: simWidth, Height: simHeight, FPS: simFPS})
	case "linux":
		return nil, errors.New("device: the linux hal is not built yet (use --hal sim)")
	}
	return nil, fmt.Errorf("device: unknown hal %q (want sim or linux)", name)
}

func (d *daemon) setupMedia() error {
	var err error
	d.videoTrack, err = webrtc.NewTrackLocalStaticSample(signaling.H264, "camera", streamName)
	if err != nil {
		return fmt.Errorf("device: video track: %w", err)
	}
	d.audioTrack, err = webrtc.NewTrackLocalStaticSample(signaling.Opus, "microphone", streamName)
	if err != nil {
		return fmt.Errorf("device: audio track: %w", err)
	}
	f := d.board.Camera.Format()
	if d.venc, err = media.NewX264(media.X264Config{Width: f.Width, Height: f.Height, FPS: f.FPS, Bitrate: videoBPS}); err != nil {
		return err
	}
	d.video = media.NewVideo(d.board.Camera, d.venc, d.videoTrack)
	aenc, err := media.NewOpusEncoder(audioBPS)
	if err != nil {
		return err
	}
	d.audio, err = media.NewAudio(d.board.Mic, aenc, d.audioTrack)
	return err
}

// closeEncoders frees the x264 encoder's C memory (the Opus encoder is Go-managed).
func (d *daemon) closeEncoders() {
	if d.venc != nil {
		_ = d.venc.Close()
	}
}

// applyMute is the one place mic mute takes effect: silence into the encoder first (so
// no audio energy leaves), then the LED.
func (d *daemon) applyMute(muted bool) {
	d.audio.SetMuted(muted)
	if d.board.LED != nil {
		if err := d.board.LED.Set(muted); err != nil {
			d.log.Warn("mute LED", "err", err)
		}
	}
	d.mu.Lock()
	d.led = muted
	d.mu.Unlock()
}

// SetMicMuted mutes or unmutes the microphone, persists it and tells the room.
func (d *daemon) SetMicMuted(ctx context.Context, muted bool) error {
	d.applyMute(muted)
	d.mu.Lock()
	changed := d.saved.MicMuted != muted
	d.saved.MicMuted = muted
	saved := d.saved
	d.mu.Unlock()
	if changed {
		d.log.Info("mic", "muted", muted)
		if err := d.store.SaveState(saved); err != nil {
			return fmt.Errorf("device: mute applied but not saved: %w", err)
		}
	}
	d.room.setMicMuted(ctx, muted)
	return nil
}

func (d *daemon) micMuted() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.saved.MicMuted
}

// Press acts like a hardware press and release of a button; it needs a board whose buttons
// can be pressed in software (the simulated one).
func (d *daemon) Press(ctx context.Context, button string) error {
	p, ok := d.board.Buttons.(interface {
		Press(ctx context.Context, name string) error
	})
	if !ok {
		return fmt.Errorf("device: the %s board's buttons cannot be pressed in software", d.board.Name)
	}
	return p.Press(ctx, button)
}

// watchButtons turns button presses into actions; it works with no network or room.
func (d *daemon) watchButtons(ctx context.Context) error {
	if d.board.Buttons == nil {
		return nil
	}
	for {
		ev, err := d.board.Buttons.ReadEvent(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !ev.Pressed {
			continue
		}
		switch ev.Button {
		case hal.ButtonMic:
			if err := d.SetMicMuted(ctx, !d.micMuted()); err != nil {
				d.log.Error("mic button", "err", err)
			}
		default:
			d.log.Info("button has no action in this build", "button", ev.Button)
		}
	}
}

// Provision validates and stores new provisioning, then (re)joins with it.
func (d *daemon) Provision(ctx context.Context, p Provisioning) error {
	cfg, info, err := d.store.Provision(p, time.Now())
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg, d.info = cfg, info
	d.mu.Unlock()
	d.log.Info("provisioned", "url", p.URL, "room", info.Room, "identity", info.Identity)
	d.room.reprovisioned()
	return nil
}

func (d *daemon) provisioning() (Config, TokenInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg, d.info
}

// Status reports the device as it is now.
func (d *daemon) Status(ctx context.Context) Status {
	cfg, info := d.provisioning()
	d.mu.Lock()
	st := Status{
		Provisioned: cfg.Provisioned(),
		URL:         cfg.URL,
		Room:        info.Room,
		Identity:    info.Identity,
		MicMuted:    d.saved.MicMuted,
		LED:         d.led,
		Hal:         d.board.Name,
	}
	d.mu.Unlock()
	d.room.fillStatus(&st)
	return st
}

// localTracks are what the device publishes on every join, with its current mute state;
// the SFU's keyframe requests for the camera reach the encoder.
func (d *daemon) localTracks() []signaling.Track {
	f := d.board.Camera.Format()
	return []signaling.Track{
		{LocalTrack: signaling.LocalTrack{Track: d.videoTrack, Type: livekit.TrackType_VIDEO,
			Source: livekit.TrackSource_CAMERA, Name: "camera", Width: uint32(f.Width), Height: uint32(f.Height)},
			OnRTCP: d.video.HandleRTCP},
		{LocalTrack: signaling.LocalTrack{Track: d.audioTrack, Type: livekit.TrackType_AUDIO,
			Source: livekit.TrackSource_MICROPHONE, Name: "microphone", Muted: d.micMuted()}},
	}
}
