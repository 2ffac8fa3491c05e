package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"roombox/appliance/provision"
	"roombox/appliance/store"
	"roombox/control"
	"roombox/localapi"
	"roombox/telemetry"
	"strings"
	"sync"
	"time"

	systemd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/pion/webrtc/v4"

	"roombox/fleet"
	"roombox/hal"
	"roombox/hal/sim"
	"roombox/media"
	"roombox/media/apm"
	"roombox/signaling"
)

// Media settings of the simulated board (the default on a dev machine).
const (
	streamName = "roombox"
)

// daemon is the running appliance: it owns the board, the media pipelines, the room
// connection and the local servers, and implements control.Controller for them.
type daemon struct {
	log     *slog.Logger
	store   *store.Store
	board   *hal.Board
	video   *media.Video
	audio   *media.Audio
	encoder string // which encoder the video encodes with, for control.Status; under mu
	// playback plays the room through the speaker; nil on a board without one.
	playback *media.Playback
	// proc processes the microphone (audio.go); nil without one, or when it cannot.
	// procSettings are the settings it runs with, under mu; micDelay is how long the
	// microphone holds audio.
	proc         *apm.Processor
	procSettings control.AudioSettings
	micDelay     time.Duration
	// steps time the encoders' calls for the watchdog's health check (sdnotify.go).
	steps       []*stepTimer // set up before the pipelines run
	videoStep   *stepTimer
	encodeStall time.Duration
	hooks       testHooks

	// videoTrack is the camera's layers as the room gets them; preview is one of them for
	// the page (previewLayer); layers decides which run. nil without a camera. videoAsked
	// is the capture last handed to the pipeline, under mu.
	videoOpts    VideoOptions
	videoAsked   control.VideoSettings
	videoTrack   *signaling.VideoTrack
	preview      *webrtc.TrackLocalStaticSample
	previewLayer int
	layers       *layerControl
	audioTrack   *signaling.AudioTrack

	room  *roomLink
	trust provision.Trust

	// For the control page: the log tail, the metrics, and the console-only logger.
	logs       *telemetry.LogRing
	metrics    *telemetry.Metrics
	consoleLog *slog.Logger

	mu    sync.Mutex
	cfg   store.Config
	info  provision.TokenInfo // of cfg.Token
	saved store.SavedState
	led   bool

	// saveMu orders the writes of state.json (persist); stored is what it holds.
	saveMu sync.Mutex
	stored store.SavedState
}

// Run runs the daemon until ctx ends: loads state, starts the board's media, joins the
// room when provisioned, and serves the LocalAPI and the control page.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := store.Open(opts.StateDir)
	if err != nil {
		return err
	}
	d := &daemon{store: st, trust: provision.Trust{FleetKey: opts.FleetKey}, videoOpts: opts.Video,
		logs: telemetry.NewLogRing(telemetry.LogLines), metrics: telemetry.NewMetrics(), consoleLog: log, encodeStall: encodeStall, hooks: opts.hooks}
	if opts.encodeStall > 0 {
		d.encodeStall = opts.encodeStall
	}
	if b := opts.board; b != nil && b.Camera != nil && opts.Video.Width == 0 {
		// A board handed in (tests) is open already: its capture is the run's.
		f := b.Camera.Format()
		d.videoOpts.Width, d.videoOpts.Height, d.videoOpts.FPS = f.Width, f.Height, f.FPS
	}
	log = d.logs.Wrap(log)
	d.log = log
	if d.trust.DeviceID, err = st.DeviceID(); err != nil {
		return err
	}
	if err := d.load(); err != nil {
		return err
	}
	// The camera opens at the capture set on the device, if one was.
	opts.Video = d.videoOpts.asking(d.videoSettings(d.saved))
	if d.board, err = openBoard(ctx, opts, log); err != nil {
		return err
	}
	defer d.board.Close()
	if err := d.setupMedia(); err != nil {
		return err
	}
	defer d.closeMedia()
	// Mutes are applied before any media is read: a muted device is muted from its first sample.
	d.mu.Lock()
	d.applyLocked(d.saved)
	d.mu.Unlock()
	d.applyConfig(d.cfg)
	if d.hooks.started != nil {
		d.hooks.started(d)
	}
	d.room = newRoomLink(d, log)
	d.room.updateState() // the page and /healthz never see a state not derived yet
	if opts.ProvisionFile != "" {
		d.consumeProvisionFile(ctx, opts.ProvisionFile)
	}

	api, err := localapi.Listen(ctx, localapi.SocketPath(st.Dir()))
	if err != nil {
		return err
	}
	sampler := d.sampler()
	d.metrics.Observe(d, sampler.Latest, d.board.Thermal)
	web, err := d.webServer(opts.HTTPAddr, sampler)
	if err != nil {
		api.Close()
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	spawn := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if d.video != nil {
		spawn("video", d.video.Run)
		spawn("video load", d.watchLoad)
	}
	if d.audio != nil {
		spawn("audio", d.audio.Run)
	}
	if d.playback != nil {
		spawn("speaker", d.playback.Run)
	}
	spawn("buttons", d.watchButtons)
	spawn("room", d.room.run)
	spawn("localapi", func(ctx context.Context) error { return localapi.ServeListener(ctx, api, d, log) })
	spawn("telemetry", sampler.Run)
	spawn("http", web.Serve)
	log.Info("roombox running", "hal", d.board.Name, "state_dir", st.Dir(), "http", web.Addr())
	// Both listeners are bound (connections queue until Serve runs), the board is open and
	// the stored state applied: what systemd's Type=notify waits for.
	d.notify(systemd.SdNotifyReady)

	runErr := d.supervise(ctx, errs, opts.stall)
	d.notify(systemd.SdNotifyStopping)
	cancel()
	wg.Wait()
	return runErr
}

func (d *daemon) load() error {
	cfg, err := d.store.LoadConfig()
	if err := d.recovered(err); err != nil {
		return err
	}
	saved, err := d.store.LoadState()
	stored := saved
	if ce, ok := errors.AsType[*store.CorruptError](err); ok && ce.LastGood != nil {
		// Privacy fails closed: with no good copy the device cannot know whether it was
		// muted, so it starts with the mic muted and the camera off until someone unmutes.
		saved.MicMuted, saved.CameraOff = true, true
		d.log.Warn("state store: no good copy of the mute state; starting muted with the camera off")
	}
	if err := d.recovered(err); err != nil {
		return err
	}
	if err := saved.Audio.Check(); err != nil {
		// A hand-edited state.json: the rest of it holds, the audio settings go back to
		// the defaults.
		d.log.Error("state store: audio settings refused; using the defaults", "err", err)
		saved.Audio = control.AudioPatch{}
	}
	if err := saved.Video.Check(); err != nil {
		d.log.Error("state store: video settings refused; using the defaults", "err", err)
		saved.Video = control.VideoPatch{}
	}
	d.cfg, d.saved, d.stored = cfg, saved, stored
	if cfg.Provisioned() {
		// A stored token that has expired still names the room; the connection attempt
		// reports the problem and the device keeps retrying.
		d.info, _ = provision.ParseAccessToken(cfg.Token, time.Now())
	}
	return nil
}

// recovered logs a corrupt store file, whose recovered content the store returned, and
// lets the daemon run with it: exiting would restart into the same error, a crash loop.
func (d *daemon) recovered(err error) error {
	if ce, ok := errors.AsType[*store.CorruptError](err); ok {
		d.log.Error("state store: corrupt file recovered", "err", ce)
		return nil
	}
	return err
}

func openBoard(ctx context.Context, opts Options, log *slog.Logger) (*hal.Board, error) {
	if opts.board != nil {
		return opts.board, nil
	}
	switch opts.Hal {
	case "sim", "":
		cfg := simConfig(opts.Video.media())
		cfg.Room = opts.SimRoom
		if opts.SimMic != "" {
			pcm, err := sim.LoadWAV(opts.SimMic)
			if err != nil {
				return nil, err
			}
			cfg.MicPCM = pcm
		}
		return sim.NewBoard(cfg)
	case "linux":
		if opts.SimMic != "" || opts.SimRoom != nil {
			return nil, errors.New("appliance: the simulated microphone and room are for --hal sim")
		}
		return openLinuxBoard(ctx, opts.PinsFile, opts.Video, log)
	}
	return nil, fmt.Errorf("appliance: unknown hal %q (want sim or linux)", opts.Hal)
}

// setupMedia builds the pipelines for the parts the board has: a board without a camera
// or a microphone still joins its room (and plays it, with a speaker).
func (d *daemon) setupMedia() error {
	var err error
	if cam := d.board.Camera; cam != nil {
		if err := d.setupVideo(cam); err != nil {
			return err
		}
	}
	if d.board.Speaker != nil {
		if d.playback, err = media.NewPlayback(d.board.Speaker); err != nil {
			return err
		}
	}
	if d.board.Mic != nil {
		d.audioTrack = signaling.NewAudioTrack("microphone", streamName)
		aenc, err := media.NewOpusEncoder(media.DefaultConfig.AudioBitrate)
		if err != nil {
			return err
		}
		astep := &stepTimer{name: "audio encoder"}
		d.steps = append(d.steps, astep)
		var stages []media.AudioStage
		if d.proc = d.newProcessor(d.board.Mic); d.proc != nil {
			stages = append(stages, d.proc)
		}
		if d.audio, err = media.NewAudio(d.board.Mic, timedAudioEncoder{OpusEncoder: aenc, t: astep}, d.audioTrack, stages...); err != nil {
			return err
		}
	}
	return nil
}

// openTimedEncoder opens an encoder (openEncoder) whose Encode calls the watchdog's health
// check sees. The layers encode one after the other on the pipeline's goroutine, so one
// timer (videoStep) times them all; a change of capture reopens them there.
func (d *daemon) openTimedEncoder(cfg hal.EncoderConfig) (hal.VideoEncoder, error) {
	enc, name, err := d.openEncoder(cfg)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.encoder = name
	d.mu.Unlock()
	return timedVideoEncoder{VideoEncoder: enc, t: d.videoStep}, nil
}

// openEncoder opens the board's hardware encoder if it has one and it opens, else x264:
// decided at run time (a Pi 5 has no hardware encoder) and named on the page.
func (d *daemon) openEncoder(cfg hal.EncoderConfig) (hal.VideoEncoder, string, error) {
	if d.board.Encoder != nil {
		enc, err := d.board.Encoder(cfg)
		if err == nil {
			return enc, d.board.EncoderName + " (hardware)", nil
		}
		d.log.Warn("hardware encoder did not open; encoding in software", "encoder", d.board.EncoderName, "err", err)
	}
	enc, err := media.NewX264(media.X264Config{EncoderConfig: cfg})
	if err != nil {
		return nil, "", err
	}
	return enc, "x264 (software)", nil
}

// closeMedia frees the video encoder (C memory or a device) and the audio processor (C++
// memory), after the pipelines have stopped; the Opus encoder is Go-managed.
func (d *daemon) closeMedia() {
	if d.video != nil {
		_ = d.video.Close()
	}
	if d.proc != nil {
		_ = d.proc.Close()
	}
}

// applyLocked is the one place mutes, volume and audio settings take effect: silence into
// the audio encoder (so no audio energy leaves) and black into the video encoder (so no
// pixels leave) first, then the LED, then the audio processing. It runs under d.mu with the
// state just recorded, so effects happen in the order changes are recorded and the last one
// recorded is what stays applied; it only sets memory flags, the LED and (when they changed)
// the processor's settings, so holding the lock waits on neither flash nor network.
func (d *daemon) applyLocked(st store.SavedState) {
	if d.audio != nil {
		d.audio.SetMuted(st.MicMuted)
	}
	if d.video != nil {
		d.video.SetEnabled(!st.CameraOff)
		d.layers.SetCameraOff(st.CameraOff)
	}
	if d.playback != nil {
		d.playback.SetMuted(st.SpeakerMuted)
		d.playback.SetVolume(st.SpeakerVolume())
	}
	if d.board.LED != nil {
		if err := d.board.LED.Set(st.MicMuted); err != nil {
			d.log.Warn("mute LED", "err", err)
		}
	}
	d.led = st.MicMuted
	d.applyAudioLocked(st)
	d.applyVideoLocked(st)
}

// SetMuted mutes or unmutes the mic, camera or speaker, persists it and tells the room.
func (d *daemon) SetMuted(ctx context.Context, t control.Target, muted bool) error {
	if _, err := control.ParseTarget(string(t)); err != nil {
		return err
	}
	return d.update(ctx, func(st *store.SavedState) {
		switch t {
		case control.TargetMic:
			st.MicMuted = muted
		case control.TargetCamera:
			st.CameraOff = muted
		case control.TargetSpeaker:
			st.SpeakerMuted = muted
		}
	})
}

// SetVolume sets the speaker volume and persists it.
func (d *daemon) SetVolume(ctx context.Context, volume int) error {
	if err := control.ValidVolume(volume); err != nil {
		return err
	}
	return d.update(ctx, func(st *store.SavedState) { st.SetVolume(volume) })
}

// update records the change to the saved state and applies the result at once, under one
// lock; then it brings the room and state.json up to the latest state. The effect comes
// first: a mute must not wait on the flash or the network. Telling and saving do not carry
// this change's state but the latest one recorded, each under its own lock (syncMutes,
// persist): a slower, older change can never land after a newer one.
func (d *daemon) update(ctx context.Context, change func(*store.SavedState)) error {
	d.mu.Lock()
	prev := d.saved
	next := prev
	change(&next)
	d.saved = next
	d.applyLocked(next)
	d.mu.Unlock()
	if next.MicMuted != prev.MicMuted {
		d.log.Info("mic", "muted", next.MicMuted)
	}
	if next.CameraOff != prev.CameraOff {
		d.log.Info("camera", "off", next.CameraOff)
	}
	if next.SpeakerMuted != prev.SpeakerMuted || next.SpeakerVolume() != prev.SpeakerVolume() {
		d.log.Info("speaker", "muted", next.SpeakerMuted, "volume", next.SpeakerVolume())
	}
	if a := audioSettings(next); a != audioSettings(prev) {
		d.log.Info("audio", "echo_cancellation", a.EchoCancellation, "noise_suppression", a.NoiseSuppression,
			"auto_gain", a.AutoGain, "input_gain_db", a.InputGainDB, "input_sensitivity", a.InputSensitivity, "dtx", a.DTX)
	}
	if next.Same(prev) {
		return nil // whoever recorded this state syncs it
	}
	d.atStage(stageApplied, next)
	// The room hears the latest state even if the caller stops waiting.
	d.room.syncMutes(context.WithoutCancel(ctx))
	d.atStage(stageTold, next)
	return d.persist()
}

// persist writes the latest recorded state to state.json unless it holds it already. One
// write at a time (saveMu), each of the state current when it starts, so state.json ends
// with the last change recorded.
func (d *daemon) persist() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	st := d.savedState()
	if st.Same(d.stored) {
		return nil
	}
	if err := d.store.SaveState(st); err != nil {
		return fmt.Errorf("appliance: applied but not saved: %w", err)
	}
	d.stored = st
	return nil
}

// atStage runs the test hook at a stage boundary of a change (testHooks.stage).
func (d *daemon) atStage(stage string, st store.SavedState) {
	if d.hooks.stage != nil {
		d.hooks.stage(stage, st)
	}
}

func (d *daemon) savedState() store.SavedState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.saved
}

// Press acts like a hardware press and release of a button; it needs a board whose buttons
// can be pressed in software (the simulated one).
func (d *daemon) Press(ctx context.Context, button string) error {
	p, ok := d.board.Buttons.(interface {
		Press(ctx context.Context, name string) error
	})
	if !ok {
		return fmt.Errorf("appliance: the %s board's buttons cannot be pressed in software", d.board.Name)
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
		// A press acts; held volume keys step again on each Repeat (from hal/button).
		volume := ev.Button == hal.ButtonVolumeUp || ev.Button == hal.ButtonVolumeDown
		if !ev.Pressed && !(volume && ev.Kind == hal.Repeat) {
			continue
		}
		if err := d.buttonAction(ctx, ev.Button); err != nil {
			d.log.Error("button", "button", ev.Button, "err", err)
		}
	}
}

// volumeStep is what one press of volume up or down changes.
const volumeStep = 10

// buttonAction is what a press of button does: the mute buttons toggle, volume steps.
func (d *daemon) buttonAction(ctx context.Context, button string) error {
	// Each action computes the new state from the one recorded, under update's lock, so a
	// press racing a page or API change toggles what is current, not what it read earlier.
	var change func(*store.SavedState)
	switch button {
	case hal.ButtonMic:
		change = func(st *store.SavedState) { st.MicMuted = !st.MicMuted }
	case hal.ButtonCamera:
		change = func(st *store.SavedState) { st.CameraOff = !st.CameraOff }
	case hal.ButtonSpeaker:
		change = func(st *store.SavedState) { st.SpeakerMuted = !st.SpeakerMuted }
	case hal.ButtonVolumeUp:
		change = func(st *store.SavedState) { st.SetVolume(min(st.SpeakerVolume()+volumeStep, control.MaxVolume)) }
	case hal.ButtonVolumeDown:
		change = func(st *store.SavedState) { st.SetVolume(max(st.SpeakerVolume()-volumeStep, 0)) }
	default:
		d.log.Info("button has no action in this build", "button", button)
		return nil
	}
	return d.update(ctx, change)
}

// Provision validates and stores new provisioning, then (re)joins with it.
func (d *daemon) Provision(ctx context.Context, p control.Provisioning) error {
	cfg, info, err := provision.Apply(d.store, p, d.trust, time.Now())
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg, d.info = cfg, info
	d.mu.Unlock()
	d.applyConfig(cfg)
	// The token's audio and video settings apply once, as changes made now: later changes
	// on the device win until the next provisioning.
	if !cfg.Media.Audio.IsZero() {
		if err := d.SetAudio(ctx, cfg.Media.Audio); err != nil {
			d.log.Error("provisioned audio settings", "err", err)
		}
	}
	if !cfg.Media.Video.IsZero() {
		if err := d.SetVideo(ctx, cfg.Media.Video); err != nil {
			d.log.Error("provisioned video settings", "err", err)
		}
	}
	args := []any{"url", cfg.URL, "room", info.Room, "identity", info.Identity}
	if p.Signed != "" {
		args = append(args, "signed_by", fleet.Fingerprint(cfg.Fleet.Key), "name", cfg.Name)
	}
	if cfg.TokenEndpoint != "" {
		args = append(args, "token_endpoint", cfg.TokenEndpoint)
	}
	d.log.Info("provisioned", args...)
	d.room.reprovisioned()
	return nil
}

// applyConfig applies provisioned media settings.
func (d *daemon) applyConfig(cfg store.Config) {
	if d.layers != nil {
		d.layers.SetLimit(cfg.Media.VideoBitrate)
	}
}

// setTokenInfo records the access token the room client is using, for control.Status.
func (d *daemon) setTokenInfo(info provision.TokenInfo) {
	d.mu.Lock()
	d.info = info
	d.mu.Unlock()
}

// consumeProvisionFile applies a provisioning token left on the boot partition and
// deletes it. A token that is refused is renamed to PATH.rejected, so it is neither
// retried at every boot nor lost to the operator.
func (d *daemon) consumeProvisionFile(ctx context.Context, path string) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil {
		err = d.Provision(ctx, control.Provisioning{Signed: strings.TrimSpace(string(data))})
	}
	if err != nil {
		d.log.Error("provisioning file refused", "file", path, "err", err)
		if rerr := os.Rename(path, path+".rejected"); rerr != nil {
			d.log.Error("provisioning file", "file", path, "err", rerr)
		}
		return
	}
	if err := os.Remove(path); err != nil {
		d.log.Error("provisioning file applied but not deleted", "file", path, "err", err)
		return
	}
	d.log.Info("provisioning file applied and deleted", "file", path)
}

func (d *daemon) provisioning() (store.Config, provision.TokenInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg, d.info
}

// control.Status reports the device as it is now.
func (d *daemon) Status(ctx context.Context) control.Status {
	cfg, info := d.provisioning()
	d.mu.Lock()
	st := control.Status{
		Provisioned:  cfg.Provisioned(),
		URL:          cfg.URL,
		Room:         info.Room,
		Identity:     info.Identity,
		MicMuted:     d.saved.MicMuted,
		CameraOff:    d.saved.CameraOff,
		SpeakerMute:  d.saved.SpeakerMuted,
		Volume:       d.saved.SpeakerVolume(),
		LED:          d.led,
		Hal:          d.board.Name,
		Encoder:      d.encoder,
		MicXruns:     xruns(d.board.Mic),
		SpeakerXruns: xruns(d.board.Speaker),
		DeviceID:     d.trust.DeviceID,
		Name:         cfg.Name,
	}
	if d.audio != nil {
		a := audioSettings(d.saved)
		st.Audio = &a
	}
	if d.layers != nil {
		v := d.layers.status()
		f := d.board.Camera.Format()
		v.Settings, v.Width, v.Height, v.FPS = d.videoSettings(d.saved), f.Width, f.Height, f.FPS
		if l, ok := d.board.Camera.(hal.ModeLister); ok {
			for _, m := range l.Modes() {
				v.Modes = append(v.Modes, control.VideoSettings{Width: m.Width, Height: m.Height, FPS: m.FPS})
			}
		}
		st.Video = &v
	}
	switch {
	case d.trust.FleetKey != nil:
		st.FleetKey = fleet.Fingerprint(d.trust.FleetKey)
	case len(cfg.Fleet.Key) > 0:
		st.FleetKey = fleet.Fingerprint(cfg.Fleet.Key)
	}
	d.mu.Unlock()
	d.room.fillStatus(&st)
	return st
}

// xruns is what dev's xrun counter says, 0 when it has none.
func xruns(dev any) uint64 {
	if c, ok := dev.(hal.XrunCounter); ok {
		return c.Xruns()
	}
	return 0
}

// localTracks are what the device publishes on every join, with its current mute state;
// the SFU's keyframe requests for the camera reach the encoder.
func (d *daemon) localTracks() []signaling.Track {
	st := d.savedState()
	var tracks []signaling.Track
	if d.video != nil {
		// Each layer's RTCP reaches its encoder (setupVideo).
		tracks = append(tracks, signaling.Track{LocalTrack: signaling.LocalTrack{Video: d.videoTrack,
			Source: signaling.SourceCamera, Name: "camera", Muted: st.CameraOff}})
	}
	if d.audio != nil {
		tracks = append(tracks, signaling.Track{LocalTrack: signaling.LocalTrack{Track: d.audioTrack,
			Source: signaling.SourceMicrophone, Name: "microphone", Muted: st.MicMuted},
			OnRTCP: d.audio.HandleRTCP})
	}
	return tracks
}
