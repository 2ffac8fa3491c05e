package control

import "strings"

// VideoStatus is what the camera sends: its capture and its simulcast layers.
type VideoStatus struct {
	Width  int `json:"width"`
	Height int `json:"height"`
	FPS    int `json:"fps"`
	// TargetBitrate is the send-side bandwidth estimate the layers share (bits per second;
	// 0 outside a room), from the room server's congestion feedback.
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
