package signaling

import (
	"errors"
	"fmt"
	"testing"
)

// Layers are ranked by size and named as the LiveKit JS client names them: one layer is a
// plain HIGH track, two are q/h (LOW, MEDIUM), three q/h/f.
func TestVideoTrackLayerNames(t *testing.T) {
	sizes := []VideoLayer{{Width: 1280, Height: 720}, {Width: 320, Height: 180}, {Width: 640, Height: 360}}
	for n, want := range []string{"high/ 1280x720", "low/q 320x180 medium/h 1280x720", "low/q 320x180 medium/h 640x360 high/f 1280x720"} {
		vt, err := NewVideoTrack("camera", "box", sizes[:n+1]...)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for i, l := range vt.Layers() {
			if i > 0 {
				got += " "
			}
			got += fmt.Sprintf("%s/%s %dx%d", l.Quality(), l.RID(), l.Layer().Width, l.Layer().Height)
			if vt.Layer(l.Quality()) != l || l.ID() != "camera" || l.StreamID() != "box" {
				t.Errorf("%d layers: layer %s is not the track's", n+1, l.RID())
			}
		}
		if got != want {
			t.Errorf("%d layers: %q, want %q", n+1, got, want)
		}
	}
	for _, bad := range [][]VideoLayer{nil, {{640, 360, 0}, {640, 360, 0}}, {{0, 360, 0}},
		{{160, 90, 0}, {320, 180, 0}, {640, 360, 0}, {1280, 720, 0}}} {
		if _, err := NewVideoTrack("camera", "box", bad...); !errors.Is(err, ErrLayers) {
			t.Errorf("layers %v: err %v, want ErrLayers", bad, err)
		}
	}
}
