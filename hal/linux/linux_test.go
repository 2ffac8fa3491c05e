package linux

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"roombox/hal"
	"roombox/hal/linux/v4l2"
)

type led struct{ on bool }

func (l *led) Set(on bool) error { l.on = on; return nil }

// describedPart is present and says what it found.
type describedPart struct{}

func (describedPart) Name() string { return "buttons" }
func (describedPart) Attach(context.Context, *hal.Board) (bool, error) {
	return true, nil
}
func (describedPart) Describe() string { return "gpio17, gpio27" }

func TestNewBoardReportsEachPart(t *testing.T) {
	l := &led{}
	cfg := Config{
		Camera: v4l2.Config{Device: "/nonexistent/video9"},
		Root:   os.DirFS("board/testdata/pi4"),
		Parts: []Part{
			NewPart("led", func(_ context.Context, b *hal.Board) (bool, error) { b.LED = l; return true, nil }),
			describedPart{},
			NewPart("mic", func(context.Context, *hal.Board) (bool, error) { return false, nil }),
			NewPart("speaker", func(context.Context, *hal.Board) (bool, error) {
				return false, fmt.Errorf("alsa: no playback card: %w", ErrAbsent)
			}),
			NewPart("keys", func(context.Context, *hal.Board) (bool, error) {
				return false, errors.New("evdev: /dev/input/event3: permission denied")
			}),
		},
	}
	b, rep, err := NewBoard(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := []PartStatus{
		{"model", Present, "Raspberry Pi 4 Model B Rev 1.5"},
		{"thermal", Present, "thermal_zone1 (cpu-thermal), 48.3 °C"},
		{"camera", Absent, ""},
		{"led", Present, ""},
		{"buttons", Present, "gpio17, gpio27"},
		{"mic", Absent, ""},
		{"speaker", Absent, "alsa: no playback card: linux: absent"},
		{"keys", Failed, "evdev: /dev/input/event3: permission denied"},
	}
	if len(rep) != len(want) {
		t.Fatalf("report = %v", rep)
	}
	for i, w := range want {
		g := rep[i]
		if g.Name != w.Name || g.State != w.State || (w.Detail != "" && g.Detail != w.Detail) {
			t.Errorf("part %d = %+v, want %+v", i, g, w)
		}
	}
	if !strings.Contains(rep[2].Detail, "/nonexistent/video9") {
		t.Errorf("camera detail %q does not say which device", rep[2].Detail)
	}
	if b.Name != "Raspberry Pi 4 Model B Rev 1.5" || b.Thermal == nil || b.Camera != nil || b.LED != l {
		t.Errorf("board = %+v", b)
	}
	if c, err := b.Thermal.Celsius(); err != nil || c != 48.312 {
		t.Errorf("Celsius = %v, %v", c, err)
	}
	if s := rep.String(); !strings.Contains(s, "keys: failed (evdev: /dev/input/event3: permission denied)") || !strings.Contains(s, "mic: absent; ") {
		t.Errorf("String = %q", s)
	}
}

func TestNewBoardWithNothing(t *testing.T) {
	b, rep, err := NewBoard(context.Background(), Config{NoCamera: true, Root: os.DirFS("board/testdata/none")})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "linux" || b.Thermal != nil || b.Camera != nil {
		t.Errorf("board = %+v", b)
	}
	for _, p := range rep {
		if p.State != Absent {
			t.Errorf("%s is %s (%s), want absent", p.Name, p.State, p.Detail)
		}
	}
}

func TestNewBoardStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	attached := 0
	_, rep, err := NewBoard(ctx, Config{NoCamera: true, Root: os.DirFS("board/testdata/none"), Parts: []Part{
		NewPart("a", func(context.Context, *hal.Board) (bool, error) { attached++; cancel(); return true, nil }),
		NewPart("b", func(context.Context, *hal.Board) (bool, error) { attached++; return true, nil }),
	}})
	if !errors.Is(err, context.Canceled) || attached != 1 || len(rep) != 4 {
		t.Errorf("err = %v, %d attached, report %v; want context.Canceled after part a", err, attached, rep)
	}
}
