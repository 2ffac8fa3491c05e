package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"roombox/appliance/store"
	"roombox/control"
	"roombox/hal"
	"roombox/media"
	"roombox/signaling"
)

// VideoOptions are the camera's capture and how many simulcast layers are published of it
// (`roombox run --video-size, --video-fps, --video-layers`); zero fields take DefaultVideo's.
// The capture is the device's default: one set on the device (control.VideoPatch) wins.
// The layers are the published track's for the whole run.
type VideoOptions struct {
	Width, Height int
	FPS           int
	Layers        int // 1 to 3: full size, then half, then quarter
}

// DefaultVideo is what a room camera sends: 720p30 in three layers.
var DefaultVideo = VideoOptions{Width: control.DefaultVideo.Width, Height: control.DefaultVideo.Height,
	FPS: control.DefaultVideo.FPS, Layers: 3}

func (o VideoOptions) withDefaults() VideoOptions {
	if o.Width == 0 && o.Height == 0 {
		o.Width, o.Height = DefaultVideo.Width, DefaultVideo.Height
	}
	if o.FPS == 0 {
		o.FPS = DefaultVideo.FPS
	}
	if o.Layers == 0 {
		o.Layers = DefaultVideo.Layers
	}
	return o
}

// media is the capture o asks of the board's camera.
func (o VideoOptions) media() media.Config {
	o = o.withDefaults()
	return media.Config{Width: o.Width, Height: o.Height, FPS: o.FPS}
}

// settings is the capture o asks for.
func (o VideoOptions) settings() control.VideoSettings {
	o = o.withDefaults()
	return control.VideoSettings{Width: o.Width, Height: o.Height, FPS: o.FPS}
}

// asking returns o with the capture s.
func (o VideoOptions) asking(s control.VideoSettings) VideoOptions {
	o.Width, o.Height, o.FPS = s.Width, s.Height, s.FPS
	return o
}

// layerBitrates is the video's total at the camera's size: livekit-client's 2.31 Mbit/s
// for three 720p layers (1.7 + 0.45 + 0.16), in proportion to the pixels, between 300 kbit/s
// and 4.5 Mbit/s.
func layerBitrates(w, h int) int {
	return min(max(int(int64(2_310_000)*int64(w*h)/(1280*720)), 300_000), 4_500_000)
}

// setupVideo builds the camera's pipeline: its layers (DefaultVideo.Layers, fewer when the
// camera is small or the hardware encoder cannot carry them), each encoded by its own
// encoder into its own track of the room's VideoTrack; the page previews the largest,
// exactly what the room's best viewer gets.
func (d *daemon) setupVideo(cam hal.Camera) error {
	f := cam.Format()
	n := d.videoOpts.withDefaults().Layers
	for n > 1 && f.Width>>(n-1) < 80 { // a quarter of 320x180 would say nothing
		n--
	}
	for n > 1 && d.overBudget(control.VideoSettings{Width: f.Width, Height: f.Height, FPS: f.FPS}, n) != nil {
		n--
		d.log.Warn("fewer video layers: the hardware encoder cannot carry more", "encoder", d.board.EncoderName, "layers", n)
	}
	cfgs, err := planLayers(f, n)
	if err != nil {
		return err
	}
	sizes, want := layerPlan(cfgs)
	if d.videoTrack, err = signaling.NewVideoTrack("camera", streamName, sizes...); err != nil {
		return fmt.Errorf("appliance: video track: %w", err)
	}
	if d.preview, err = webrtc.NewTrackLocalStaticSample(signaling.H264, "camera", streamName); err != nil {
		return fmt.Errorf("appliance: preview track: %w", err)
	}
	tracks := d.videoTrack.Layers()
	slices.Reverse(tracks) // largest first, as the pipeline's
	d.previewLayer = 0
	for i := range cfgs {
		cfgs[i].Out = tracks[i]
		if i == d.previewLayer {
			cfgs[i].Out = tee{tracks[i], d.preview}
		}
	}
	d.videoStep = &stepTimer{name: "video encoder"}
	d.steps = append(d.steps, d.videoStep)
	if d.video, err = media.NewVideo(cam, d.openTimedEncoder, cfgs); err != nil {
		return err
	}
	for i, t := range tracks {
		t.OnRTCP(d.video.Layer(i).HandleRTCP)
	}
	d.layers = newLayerControl(d.video, tracks, want, d.previewLayer, media.DefaultConfig.AudioBitrate, d.log)
	// What the camera runs, not what was asked: a camera handed in open (tests) is brought to
	// the capture asked for by the first applyLocked. The price is one reopen at start for a
	// camera whose nearest mode differs from the one asked.
	d.videoAsked = control.VideoSettings{Width: f.Width, Height: f.Height, FPS: f.FPS}
	return nil
}

// planLayers is n layers of a camera at f: its size, half and a quarter, sharing the
// bitrate for its size.
func planLayers(f hal.VideoFormat, n int) ([]media.LayerConfig, error) {
	cfgs, err := media.SimulcastLayers(f.Width, f.Height, layerBitrates(f.Width, f.Height), n)
	if err != nil {
		return nil, fmt.Errorf("appliance: video: %w", err)
	}
	return cfgs, nil
}

// layerPlan is the layers' sizes as the room's track announces them (smallest first) and
// their bitrates as the pipeline's (largest first).
func layerPlan(cfgs []media.LayerConfig) (sizes []signaling.VideoLayer, want []int) {
	n := len(cfgs)
	sizes, want = make([]signaling.VideoLayer, n), make([]int, n)
	for i, c := range cfgs {
		sizes[n-1-i] = signaling.VideoLayer{Width: uint32(c.Width), Height: uint32(c.Height), Bitrate: uint32(c.Bitrate)}
		want[i] = c.Bitrate
	}
	return sizes, want
}

// overBudget says why n layers of the capture s are more than the board's hardware encoder
// encodes (hal.Board.EncoderBudget); nil when they fit or the board has no such bound.
func (d *daemon) overBudget(s control.VideoSettings, n int) error {
	budget := d.board.EncoderBudget
	if d.board.Encoder == nil || budget == 0 {
		return nil
	}
	cfgs, err := media.SimulcastLayers(s.Width, s.Height, 1, n)
	if err != nil {
		return err
	}
	rate := 0
	for _, c := range cfgs {
		rate += c.Width * c.Height * s.FPS
	}
	if rate <= budget {
		return nil
	}
	return fmt.Errorf("%w: %dx%d at %d fps in %d layers is %.1f Mpixel/s, more than the encoder (%s) does (%.1f): lower the size or the rate",
		control.ErrBadVideo, s.Width, s.Height, s.FPS, n, float64(rate)/1e6, d.board.EncoderName, float64(budget)/1e6)
}

// videoSettings are the capture asked for with the saved state st: a capture set on the
// device or by provisioning, on top of the run's.
func (d *daemon) videoSettings(st store.SavedState) control.VideoSettings {
	return st.Video.Apply(d.videoOpts.settings())
}

// applyVideoLocked hands the camera's pipeline the capture of st if it changed; under d.mu,
// from applyLocked. The pipeline switches at its next frame (videoSwitched).
func (d *daemon) applyVideoLocked(st store.SavedState) {
	s := d.videoSettings(st)
	if d.video == nil || s == d.videoAsked {
		return
	}
	d.videoAsked = s
	n := d.video.Layers()
	d.video.Reconfigure(media.Reformat{
		Format: hal.VideoFormat{Width: s.Width, Height: s.Height, FPS: s.FPS},
		Layers: func(f hal.VideoFormat) ([]media.LayerConfig, error) { return planLayers(f, n) },
		Done:   d.videoSwitched,
	})
}

// videoSwitched runs on the pipeline's goroutine once a change of capture is applied (or
// failed): the layers' bitrates, the room's track and the room follow the new sizes.
func (d *daemon) videoSwitched(f hal.VideoFormat, cfgs []media.LayerConfig, err error) {
	if err != nil {
		d.log.Error("video settings not applied; the camera keeps its mode", "mode", fmt.Sprintf("%dx%d@%d", f.Width, f.Height, f.FPS), "err", err)
		return
	}
	sizes, want := layerPlan(cfgs)
	if err := d.videoTrack.Resize(sizes...); err != nil {
		d.log.Error("video track sizes", "err", err) // planLayers keeps the count and distinct sizes
	}
	d.layers.SetLayers(want)
	d.log.Info("video capture", "mode", fmt.Sprintf("%dx%d@%d", f.Width, f.Height, f.FPS), "layers", len(cfgs))
	d.room.videoResized()
}

// SetVideo changes the camera's capture and persists it (control.Controller): refused when
// the board has no camera or its hardware encoder cannot carry the layers at it.
func (d *daemon) SetVideo(ctx context.Context, p control.VideoPatch) error {
	if err := p.Check(); err != nil {
		return err
	}
	if d.video == nil {
		return fmt.Errorf("%w: this board has no camera", control.ErrBadVideo)
	}
	d.mu.Lock()
	next := p.Apply(d.videoSettings(d.saved))
	d.mu.Unlock()
	if err := d.overBudget(next, d.video.Layers()); err != nil {
		return err
	}
	return d.update(ctx, func(st *store.SavedState) { st.Video = st.Video.Merge(p) })
}

// setTargetBitrate hands the room's bandwidth estimate to the camera's layers, with
// whether congestion lowered it.
func (d *daemon) setTargetBitrate(bps int) {
	if d.layers == nil {
		return
	}
	congested := false
	if room := d.room.current(); room != nil {
		if sess := room.Session(); sess != nil {
			congested = sess.Congested()
		}
	}
	d.layers.SetTarget(bps, congested)
}

// bandwidth is where the estimate starts and what bounds it: every layer and the
// microphone with their overhead at the start (a LAN carries a room box's 2.4 Mbit/s; a link
// that cannot is found within seconds), the smallest layer and the microphone at least,
// twice the layers at most.
func (d *daemon) bandwidth() signaling.Bandwidth {
	if d.layers == nil {
		return signaling.Bandwidth{}
	}
	want := d.layers.wants()
	total := 0
	for _, w := range want {
		total += w
	}
	audio := media.DefaultConfig.AudioBitrate
	floor := want[len(want)-1]*keepShare/100 + audio
	return signaling.Bandwidth{Start: (total + audio) * 100 / (100 - overheadShare), Min: floor * 100 / (100 - overheadShare),
		Max: 2 * (total + audio)}
}

// tee writes each sample to both writers: the preview's layer goes to the room and the page.
type tee [2]media.SampleWriter

func (t tee) WriteSample(s pionmedia.Sample) error {
	return errors.Join(t[0].WriteSample(s), t[1].WriteSample(s))
}

// Check says what is wrong with o, naming the setting.
func (o VideoOptions) Check() error {
	o = o.withDefaults()
	if o.Layers < 1 || o.Layers > media.MaxVideoLayers {
		return fmt.Errorf("appliance: video layers %d: want 1 to %d", o.Layers, media.MaxVideoLayers)
	}
	return control.VideoPatch{Width: &o.Width, Height: &o.Height, FPS: &o.FPS}.Check()
}

// Bandwidth the layers keep for what is not video: the microphone, and RTP, RTCP and
// transport overhead (a tenth of the estimate).
const (
	overheadShare = 10 // percent of the estimate
	// A layer above the smallest is sent while what is left for it is at least 40 % of its
	// bitrate, and comes back only at 55 %: the top layer goes first when the estimate
	// falls, and does not flap at the edge.
	keepShare, addShare = 40, 55 // percent of a layer's bitrate
	// surplusShare: while a larger layer is off, what the estimate leaves over goes to the
	// largest layer sent, up to this many percent of its bitrate, so the send rate grows
	// into a rising estimate: gcc raises its estimate to at most 1.5 times what it sees
	// arrive and sends no probes, so without it q and h (610 kbit/s) could never lift the
	// estimate to where f fits again.
	surplusShare = 250
)

// share splits a video budget (bits per second) over layers whose configured bitrates are
// want, largest first; sent says which are sent now. The smallest is always sent, at no
// less than keepShare of its bitrate; no layer gets more than its bitrate unless a larger one
// is off (surplusShare).
func share(budget int, want []int, sent []bool) (rates []int, next []bool) {
	n := len(want)
	rates, next = make([]int, n), make([]bool, n)
	left := budget
	top := n - 1
	for i := n - 1; i >= 0; i-- {
		need := want[i] * addShare / 100
		if sent[i] {
			need = want[i] * keepShare / 100
		}
		if i < n-1 && left < need {
			break // a larger layer needs more still
		}
		next[i] = true
		rates[i] = max(min(want[i], left), want[i]*keepShare/100)
		left -= rates[i]
		top = i
	}
	if left > 0 && top > 0 {
		rates[top] = min(rates[top]+left, want[top]*surplusShare/100)
	}
	return rates, next
}

// layerControl decides which of the camera's layers are encoded and at what bitrate: a
// layer runs while someone receives it (dynacast: the room server's LayersWanted) and the
// bandwidth estimate carries it, or while the page previews it. Its effects are applied
// under mu, in the order the inputs arrive.
type layerControl struct {
	video   *media.Video
	tracks  []*signaling.LayerTrack // as video's layers, largest first
	want    []int                   // configured bitrates
	preview int                     // the layer the page's preview shows
	audio   int                     // the microphone's bitrate
	log     *slog.Logger

	mu       sync.Mutex
	wanted   []bool
	watching bool
	degraded degradeStep // stepNoTop: the largest layer off (degrade.go)
	target   int         // the estimate; 0 without one
	held     int         // the estimate kept while the box sends less than it by choice
	camOff   bool        // the camera is off: one black frame a second
	limit    int         // the provisioned total for video; 0: the configured bitrates
	sent     []bool
	// rates are the shares of the estimate, 0 for a layer it does not carry; encoding is
	// what each encoder aims for, its last share (a layer kept on for the preview, or off,
	// keeps the rate it last had).
	rates    []int
	encoding []int
	on       []bool
	probe    prober           // tries a layer the estimate does not carry yet
	now      func() time.Time // the prober's clock
}

func newLayerControl(video *media.Video, tracks []*signaling.LayerTrack, want []int, preview, audio int, log *slog.Logger) *layerControl {
	n := len(want)
	c := &layerControl{video: video, tracks: tracks, want: want, preview: preview, audio: audio, log: log,
		wanted: make([]bool, n), sent: make([]bool, n), rates: slices.Clone(want), encoding: slices.Clone(want), on: make([]bool, n),
		probe: newProber(), now: time.Now}
	for i := range n {
		c.wanted[i], c.sent[i], c.on[i] = true, true, true
	}
	return c
}

// update changes an input under the lock and brings the pipeline to it: the inputs arrive
// from several goroutines (the session's events, gcc, the page, the load watcher) and are
// applied in the order they arrive.
func (c *layerControl) update(why string, change func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	change()
	c.applyLocked(why)
}

// SetWanted takes the room server's word on which qualities anyone receives.
func (c *layerControl) SetWanted(w map[signaling.VideoQuality]bool) {
	c.update("room", func() {
		for i, t := range c.tracks {
			if v, ok := w[t.Quality()]; ok {
				c.wanted[i] = v
			}
		}
	})
}

// ResetWanted makes every layer wanted until the server says otherwise: a new session's
// server has not spoken yet, and sends an update only when what is wanted changes.
func (c *layerControl) ResetWanted() {
	c.update("joined", func() {
		for i := range c.wanted {
			c.wanted[i] = true
		}
	})
}

// SetWatching keeps the preview's layer running while the page previews it.
func (c *layerControl) SetWatching(on bool) { c.update("preview", func() { c.watching = on }) }

// SetDegraded takes the camera's degradation step (degrade.go).
func (c *layerControl) SetDegraded(s degradeStep) { c.update("degradation", func() { c.degraded = s }) }

// SetTarget takes a new bandwidth estimate (bits per second; 0: none, outside a room), and
// whether gcc lowered it for congestion.
//
// While the box sends less than the estimate by choice (limitedLocked: a layer nobody
// wants, the camera off, a degradation), gcc follows what it sees arrive down (it raises
// its estimate to at most 1.5 times that, and it sends no probes), so a layer wanted again
// would wait for the prober's trials to climb back. The estimate from before is held for
// that moment, as libwebrtc holds it in its application-limited region and probes on
// resume: the layers come back at once, and if the link no longer carries them, the
// congestion they meet (the delay detector's decrease, or loss over 10 %) releases the hold
// within a feedback interval or two. Meanwhile what is sent follows gcc's own estimate, and
// the signals of the limited stretch do not release the hold: a trickle of small packets
// says little about what the link carries.
func (c *layerControl) SetTarget(bps int, congested bool) {
	c.update("bandwidth", func() {
		if bps == 0 || !c.limitedLocked() && (congested || bps >= c.held) {
			c.held = 0
		}
		c.target = bps
	})
}

// SetCameraOff takes the camera's state: off sends one black frame a second.
func (c *layerControl) SetCameraOff(off bool) { c.update("camera", func() { c.camOff = off }) }

// limitedLocked: the layers send less than the estimate carries by the box's choice.
func (c *layerControl) limitedLocked() bool {
	return c.camOff || c.degraded != stepFull || slices.Contains(c.wanted, false)
}

// estimateLocked is the estimate the layers share: gcc's while limited (it is recorded for
// the resume), the held one after it until released (SetTarget).
func (c *layerControl) estimateLocked() int {
	if c.limitedLocked() {
		c.held = max(c.held, c.target)
		return c.target
	}
	return max(c.target, c.held)
}

// SetLayers takes the layers' bitrates for a new capture size, largest first.
func (c *layerControl) SetLayers(want []int) {
	c.update("capture", func() { c.want, c.encoding = slices.Clone(want), slices.Clone(want) }) // reopened at these
}

// wants is the layers' configured bitrates, largest first.
func (c *layerControl) wants() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.want)
}

// SetLimit caps the video's total at the provisioned bitrate (0: the configured bitrates).
func (c *layerControl) SetLimit(bps int) { c.update("provisioned bitrate", func() { c.limit = bps }) }

// applyLocked brings the pipeline to the inputs, logging a change of the layers sent.
func (c *layerControl) applyLocked(why string) {
	total := 0
	for _, w := range c.want {
		total += w
	}
	budget := total
	if c.limit > 0 {
		budget = c.limit
	}
	estimate := c.estimateLocked()
	if estimate > 0 {
		budget = min(budget, estimate*(100-overheadShare)/100-c.audio)
	}
	prev := c.sent
	c.rates, c.sent = share(budget, c.want, c.sent)
	dropped, top := false, len(c.want)-1
	for i := range c.want {
		dropped = dropped || prev[i] && !c.sent[i]
		if c.sent[i] {
			top = min(top, i)
		}
	}
	candidate := -1
	if top > 0 && c.wanted[top-1] && estimate > 0 && !(c.degraded >= stepNoTop && top-1 == 0) {
		candidate = top - 1
	}
	c.probe.adjust(c.now(), estimate, candidate, dropped, c.want, c.rates, c.sent)
	changed := false
	for i := range c.want {
		l := c.video.Layer(i)
		// The page's preview is on the LAN, not behind the room's estimate: its layer runs
		// while it is open, carried or not (the room then gets it too).
		on := (c.wanted[i] && c.sent[i] || c.watching && i == c.preview) &&
			!(c.degraded >= stepNoTop && i == 0 && len(c.want) > 1)
		if on != c.on[i] {
			changed = true
			c.on[i] = on
			l.SetEnabled(on)
		}
		if c.rates[i] == 0 {
			continue // not sent: its encoder keeps its last rate for when it comes back
		}
		if err := l.SetBitrate(c.rates[i]); err != nil {
			c.log.Warn("video layer bitrate", "rid", l.Config().RID, "err", err)
			continue
		}
		c.encoding[i] = c.rates[i]
	}
	if changed {
		c.log.Info("video layers", "sending", c.sendingLocked(), "why", why, "estimate", c.target, "held", c.held, "budget", budget)
	}
}

func (c *layerControl) sendingLocked() string {
	var rids []string
	for i := range c.want {
		l := c.video.Layer(i)
		if c.on[i] {
			rids = append(rids, l.Config().RID)
		}
	}
	if len(rids) == 0 {
		return "none"
	}
	return strings.Join(rids, ",")
}

// status is the layers for control.Status.
func (c *layerControl) status() control.VideoStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var st control.VideoStatus
	for i := range c.want {
		l := c.video.Layer(i)
		cfg := l.Config()
		st.Layers = append(st.Layers, control.VideoLayer{RID: cfg.RID, Width: cfg.Width, Height: cfg.Height,
			Bitrate: c.encoding[i], Wanted: c.wanted[i] || c.watching && i == c.preview, Sent: c.on[i], Frames: l.Encoded()})
	}
	st.TargetBitrate = c.estimateLocked()
	st.Degraded = c.degraded.String()
	return st
}
