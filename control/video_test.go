package control

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// A video patch names the field out of range; merged, the later change wins field by field;
// logged, it shows the fields it sets by value.
func TestVideoPatch(t *testing.T) {
	for _, tc := range []struct {
		p   VideoPatch
		msg string
	}{
		{VideoPatch{Height: new(720)}, "width and height go together"},
		{VideoPatch{Width: new(62), Height: new(720)}, "width 62"},
		{VideoPatch{Width: new(1280), Height: new(1090)}, "height 1090"},
		{VideoPatch{Width: new(1279), Height: new(720)}, "width 1279"},
		{VideoPatch{FPS: new(61)}, "fps 61 (want 1 to 60)"},
	} {
		if err := tc.p.Check(); !errors.Is(err, ErrBadVideo) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Check(%s) = %v", tc.msg, err)
		}
	}
	p := VideoPatch{Width: new(1920), Height: new(1080)}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	m := p.Merge(VideoPatch{FPS: new(15)}).Merge(VideoPatch{Width: new(1280), Height: new(720)})
	if got := m.Apply(DefaultVideo); got != (VideoSettings{Width: 1280, Height: 720, FPS: 15}) {
		t.Errorf("merged and applied: %+v", got)
	}
	*p.Width = 640 // the merge shares no pointer
	if *m.Width != 1280 || !m.Same(VideoPatch{Width: new(1280), Height: new(720), FPS: new(15)}) {
		t.Errorf("merged patch changed with its source: %+v", m)
	}
	var log bytes.Buffer
	slog.New(slog.NewTextHandler(&log, nil)).Info("x", "change", VideoPatch{FPS: new(24)})
	if !strings.Contains(log.String(), "change.fps=24") || strings.Contains(log.String(), "width") {
		t.Errorf("logged as %q, want change.fps=24 alone", log.String())
	}
}
