package appliance

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"roombox/control"
	"roombox/hal"
	"roombox/media"
	"roombox/signaling"
)

// VideoOptions are the camera's capture and how many simulcast layers are published of it
// (`roombox run --video-size, --video-fps, --video-layers`); zero fields take DefaultVideo's.
type VideoOptions struct {
	Width, Height int
	FPS           int
	Layers        int // 1 to 3: full size, then half, then quarter
}

// DefaultVideo is what a room camera sends: 720p30 in three layers.
var DefaultVideo = VideoOptions{Width: 1280, Height: 720, FPS: 30, Layers: 3}

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

// layerBitrates is the video's total at the camera's size: livekit-client's 2.31 Mbit/s
// for three 720p layers (1.7 + 0.45 + 0.16), in proportion to the pixels, between 300 kbit/s
// and 4.5 Mbit/s.
func layerBitrates(w, h int) int {
	return min(max(int(int64(2_310_000)*int64(w*h)/(1280*720)), 300_000), 4_500_000)
}

// setupVideo builds the camera's pipeline: its layers (DefaultVideo.Layers, fewer when the
// camera is small), each encoded by its own encoder into its own track of the room's
// VideoTrack; the page previews the largest, exactly what the room's best viewer gets.
func (d *daemon) setupVideo(cam hal.Camera) error {
	f := cam.Format()
	n := d.videoOpts.withDefaults().Layers
	for n > 1 && f.Width>>(n-1) < 80 { // a quarter of 320x180 would say nothing
		n--
	}
	cfgs, err := media.SimulcastLayers(f.Width, f.Height, layerBitrates(f.Width, f.Height), n)
	if err != nil {
		return fmt.Errorf("appliance: video: %w", err)
	}
	sizes := make([]signaling.VideoLayer, n) // smallest first, as the room's track lists them
	want := make([]int, n)
	for i, c := range cfgs {
		sizes[n-1-i] = signaling.VideoLayer{Width: uint32(c.Width), Height: uint32(c.Height), Bitrate: uint32(c.Bitrate)}
		want[i] = c.Bitrate
	}
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
	if d.video, err = media.NewVideo(cam, d.openTimedEncoder, cfgs); err != nil {
		return err
	}
	for i, t := range tracks {
		t.OnRTCP(d.video.Layer(i).HandleRTCP)
	}
	d.layers = newLayerControl(d.video, tracks, want, d.previewLayer, media.DefaultConfig.AudioBitrate, d.log)
	return nil
}

// setTargetBitrate hands the room's bandwidth estimate to the camera's layers.
func (d *daemon) setTargetBitrate(bps int) {
	if d.layers != nil {
		d.layers.SetTarget(bps)
	}
}

// bandwidth is where the estimate starts and what bounds it: every layer and the
// microphone with their overhead at the start (a LAN carries a room box's 2.4 Mbit/s; a link
// that cannot is found within seconds), the smallest layer and the microphone at least,
// twice the layers at most.
func (d *daemon) bandwidth() signaling.Bandwidth {
	if d.layers == nil {
		return signaling.Bandwidth{}
	}
	total := 0
	for _, w := range d.layers.want {
		total += w
	}
	audio := media.DefaultConfig.AudioBitrate
	floor := d.layers.want[len(d.layers.want)-1]*keepShare/100 + audio
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
	switch {
	case o.Width < 64 || o.Height < 64 || o.Width > 1920 || o.Height > 1088 || o.Width%2 != 0 || o.Height%2 != 0:
		return fmt.Errorf("appliance: video size %dx%d: want even sizes from 64x64 to 1920x1088", o.Width, o.Height)
	case o.FPS < 1 || o.FPS > 60:
		return fmt.Errorf("appliance: video rate %d fps: want 1 to 60", o.FPS)
	case o.Layers < 1 || o.Layers > media.MaxVideoLayers:
		return fmt.Errorf("appliance: video layers %d: want 1 to %d", o.Layers, media.MaxVideoLayers)
	}
	return nil
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
	limit    int         // the provisioned total for video; 0: the configured bitrates
	sent     []bool
	rates    []int
	on       []bool
	probe    prober           // tries a layer the estimate does not carry yet
	now      func() time.Time // the prober's clock
}

func newLayerControl(video *media.Video, tracks []*signaling.LayerTrack, want []int, preview, audio int, log *slog.Logger) *layerControl {
	n := len(want)
	c := &layerControl{video: video, tracks: tracks, want: want, preview: preview, audio: audio, log: log,
		wanted: make([]bool, n), sent: make([]bool, n), rates: slices.Clone(want), on: make([]bool, n),
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

// SetTarget takes a new bandwidth estimate (bits per second; 0: none, outside a room).
func (c *layerControl) SetTarget(bps int) { c.update("bandwidth", func() { c.target = bps }) }

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
	if c.target > 0 {
		budget = min(budget, c.target*(100-overheadShare)/100-c.audio)
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
	if top > 0 && c.wanted[top-1] && c.target > 0 && !(c.degraded >= stepNoTop && top-1 == 0) {
		candidate = top - 1
	}
	c.probe.adjust(c.now(), c.target, candidate, dropped, c.want, c.rates, c.sent)
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
		}
	}
	if changed {
		c.log.Info("video layers", "sending", c.sendingLocked(), "why", why, "estimate", c.target, "budget", budget)
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
			Bitrate: c.rates[i], Wanted: c.wanted[i] || c.watching && i == c.preview, Sent: c.on[i], Frames: l.Encoded()})
	}
	st.TargetBitrate = c.target
	st.Degraded = c.degraded.String()
	return st
}
