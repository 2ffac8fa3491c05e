package control

import (
	"fmt"
	"log/slog"
	"strings"
)

// VideoStatus is what the camera sends: its capture and its simulcast layers.
type VideoStatus struct {
	// Settings are the capture asked for; Width, Height and FPS the camera's mode in force
	// (the nearest it has; the old one while a change is being applied, or if it failed).
	Settings VideoSettings `json:"settings"`
	Width    int           `json:"width"`
	Height   int           `json:"height"`
	FPS      int           `json:"fps"`
	// Modes are the sizes the camera offers, each at its fastest rate, smallest first;
	// empty when it does not list them.
	Modes []VideoSettings `json:"modes,omitempty"`
	// TargetBitrate is the send-side bandwidth estimate the layers share (bits per second;
	// 0 outside a room), from the room server's congestion feedback; held while the box
	// sends less than it by choice (a layer nobody wants, the camera off).
	TargetBitrate int `json:"target_bitrate,omitempty"`
	// Degraded says what the camera gave up because its encoders fell behind or the board
	// ran hot ("half frame rate", "half frame rate, top layer off"); empty when nothing.
	Degraded string       `json:"degraded,omitempty"`
	Layers   []VideoLayer `json:"layers"`
}

// VideoLayer is one simulcast layer, largest first.
type VideoLayer struct {
	RID     string `json:"rid"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	Bitrate int    `json:"bitrate"` // the encoder's target, bits per second
	// Wanted: someone in the room receives it (dynacast), or the page previews it.
	Wanted bool `json:"wanted"`
	// Sent: it is encoded, wanted and within the bandwidth estimate.
	Sent bool `json:"sent"`
	// Frames counts the frames encoded since start.
	Frames uint64 `json:"frames"`
}

// Sending lists the rids of the layers sent, largest first, comma-separated ("f,h,q");
// empty when none is sent or v is nil (no camera).
func (v *VideoStatus) Sending() string {
	if v == nil {
		return ""
	}
	var rids []string
	for _, l := range v.Layers {
		if l.Sent {
			rids = append(rids, l.RID)
		}
	}
	return strings.Join(rids, ",")
}

// Video capture bounds: even sizes (4:2:0 chroma) up to 1080p (1088: a whole number of
// 16-pixel macroblocks), 1 to 60 frames a second.
const (
	MinVideoSide                  = 64
	MaxVideoWidth, MaxVideoHeight = 1920, 1088
	MaxVideoFPS                   = 60
)

// VideoSettings are the camera's capture, the same on the page, the LocalAPI, the CLI and
// in a provisioning token's media claims. The camera takes its mode nearest to them;
// Status.Video says what it took.
type VideoSettings struct {
	Width  int `json:"width"`
	Height int `json:"height"`
	FPS    int `json:"fps"`
}

// DefaultVideo is what a room camera sends: 720p30.
var DefaultVideo = VideoSettings{Width: 1280, Height: 720, FPS: 30}

// VideoPatch changes some video settings: the size (width and height together), the rate,
// or both; the others are kept. It is what the APIs take, what a provisioning token carries
// and what the device stores of settings made on it (the defaults stay the build's and the
// `roombox run` flags').
type VideoPatch struct {
	Width  *int `json:"width,omitempty"`
	Height *int `json:"height,omitempty"`
	FPS    *int `json:"fps,omitempty"`
}

// ErrBadVideo is a video setting out of its range, or one the camera and encoder cannot
// carry.
var ErrBadVideo = NewInputError("control: bad video setting")

// IsZero reports whether p changes nothing.
func (p VideoPatch) IsZero() bool { return p == VideoPatch{} }

// Check reports the first field of p out of its range, naming it and the range.
func (p VideoPatch) Check() error {
	switch {
	case (p.Width == nil) != (p.Height == nil):
		return fmt.Errorf("%w: width and height go together", ErrBadVideo)
	case p.Width != nil && !evenIn(*p.Width, MinVideoSide, MaxVideoWidth):
		return fmt.Errorf("%w: width %d (want an even number from %d to %d)", ErrBadVideo, *p.Width, MinVideoSide, MaxVideoWidth)
	case p.Height != nil && !evenIn(*p.Height, MinVideoSide, MaxVideoHeight):
		return fmt.Errorf("%w: height %d (want an even number from %d to %d)", ErrBadVideo, *p.Height, MinVideoSide, MaxVideoHeight)
	case p.FPS != nil && (*p.FPS < 1 || *p.FPS > MaxVideoFPS):
		return fmt.Errorf("%w: fps %d (want 1 to %d)", ErrBadVideo, *p.FPS, MaxVideoFPS)
	}
	return nil
}

func evenIn(v, lo, hi int) bool { return v >= lo && v <= hi && v%2 == 0 }

// Apply returns s with p's fields; p must have passed Check.
func (p VideoPatch) Apply(s VideoSettings) VideoSettings {
	set(&s.Width, p.Width)
	set(&s.Height, p.Height)
	set(&s.FPS, p.FPS)
	return s
}

// Merge returns p with q's fields on top: q is the later change. The result shares no
// pointer with either.
func (p VideoPatch) Merge(q VideoPatch) VideoPatch {
	return VideoPatch{Width: later(p.Width, q.Width), Height: later(p.Height, q.Height), FPS: later(p.FPS, q.FPS)}
}

// LogValue is the fields p sets (slog.LogValuer).
func (p VideoPatch) LogValue() slog.Value {
	return slog.GroupValue(attr("width", p.Width), attr("height", p.Height), attr("fps", p.FPS))
}

// Same reports whether p and q set the same fields to the same values.
func (p VideoPatch) Same(q VideoPatch) bool {
	return same(p.Width, q.Width) && same(p.Height, q.Height) && same(p.FPS, q.FPS)
}
