package media

import "fmt"

// LayerConfig is one layer of a Video: its RID (the simulcast stream id the SFU knows it
// by; empty for a track sent without simulcast), its picture size and bitrate, and where
// its samples go.
type LayerConfig struct {
	RID           string
	Width, Height int
	Bitrate       int // bits per second
	// Out takes the layer's samples: its track. SimulcastLayers leaves it nil.
	Out SampleWriter
}

// simulcastShares are the bitrate weights of 1, 2 and 3 layers, largest first, from
// livekit-client's defaults (src/room/track/options.ts VideoPresets: h720 1.7 Mbit/s,
// h360 450 kbit/s, h180 160 kbit/s; src/room/participant/publishUtils.ts
// defaultSimulcastPresets169 and computeVideoEncodings): 720p sends h720, h360 and h180;
// a 360p camera sends itself at h360's rate and h180.
var simulcastShares = [][]int{{1}, {450, 160}, {1700, 450, 160}}

// simulcastRIDs are the layers' RIDs, largest first. livekit-client names its encodings
// q, h, f from the smallest up (publishUtils.ts videoRids) and livekit-server maps them to
// LOW, MEDIUM, HIGH in that order: with two layers the full size is "h" and its half "q".
var simulcastRIDs = [][]string{{"q"}, {"h", "q"}, {"f", "h", "q"}}

// SimulcastLayers splits a width x height camera into n layers (1 to 3), largest first as
// NewVideo takes them: the camera's size, then each half the one before (even sides, at
// least 16 pixels), sharing totalBitrate in livekit-client's proportions (1280x720 at
// 2.31 Mbit/s gives exactly its 1.7 Mbit/s, 450 and 160 kbit/s).
func SimulcastLayers(width, height, totalBitrate, n int) ([]LayerConfig, error) {
	if n < 1 || n > len(simulcastShares) {
		return nil, fmt.Errorf("media: %d simulcast layers: want 1 to %d", n, len(simulcastShares))
	}
	if width < 16 || height < 16 || width%2 != 0 || height%2 != 0 {
		return nil, fmt.Errorf("media: simulcast of %dx%d: want even sides of 16 or more", width, height)
	}
	shares, sum := simulcastShares[n-1], 0
	for _, s := range shares {
		sum += s
	}
	layers := make([]LayerConfig, n)
	w, h := width, height
	for i := range layers {
		layers[i] = LayerConfig{RID: simulcastRIDs[n-1][i], Width: w, Height: h,
			Bitrate: int(int64(totalBitrate) * int64(shares[i]) / int64(sum))}
		w, h = max(w/2&^1, 16), max(h/2&^1, 16)
	}
	return layers, nil
}
