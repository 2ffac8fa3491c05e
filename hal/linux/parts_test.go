package linux

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"roombox/hal"
	"roombox/hal/linux/m2m"
	"roombox/hal/linux/m2m/m2mtest"
)

// The encoder part offers the M2M encoder it finds (here the bcm2835 fake among a decoder)
// and reports a board without one as absent.
func TestEncoderPart(t *testing.T) {
	devs := m2mtest.Devices{"/dev/video10": m2mtest.Decoder(), "/dev/video11": m2mtest.Encoder()}
	b := &hal.Board{}
	ok, err := EncoderPart(m2m.Finder{Paths: devs.Paths(), Open: devs.Open}).Attach(context.Background(), b)
	if !ok || err != nil || b.Encoder == nil || b.EncoderName != "bcm2835-codec-encode /dev/video11" {
		t.Fatalf("attach: %v, %v; encoder name %q", ok, err, b.EncoderName)
	}
	enc, err := b.Encoder(hal.EncoderConfig{Width: 640, Height: 360, FPS: 30, Bitrate: 800_000})
	if err != nil {
		t.Fatal(err)
	}
	f := hal.Frame{}
	f.Ensure(640, 360)
	if ef, err := enc.Encode(&f, true); err != nil || !ef.Keyframe {
		t.Fatalf("first frame: keyframe %v, %v", ef.Keyframe, err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}

	none := m2mtest.Devices{"/dev/video10": m2mtest.Decoder()}
	ok, err = EncoderPart(m2m.Finder{Paths: none.Paths(), Open: none.Open}).Attach(context.Background(), &hal.Board{})
	if ok || !errors.Is(err, ErrAbsent) {
		t.Fatalf("no encoder: %v, %v; want absent", ok, err)
	}
}

// fakeKeys is a button source fed by the test.
type fakeKeys struct {
	name string
	ch   chan hal.ButtonEvent
}

func (f fakeKeys) Names() []string { return []string{f.name} }
func (f fakeKeys) ReadEvent(ctx context.Context) (hal.ButtonEvent, error) {
	select {
	case ev := <-f.ch:
		return ev, nil
	case <-ctx.Done():
		return hal.ButtonEvent{}, ctx.Err()
	}
}

// With two button sources the board gets one merged source, whose relay stops when the
// board closes; with none, buttons are absent.
func TestButtonsPart(t *testing.T) {
	defer goleak.VerifyNone(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if ok, err := (&Buttons{Log: log}).Part().Attach(context.Background(), &hal.Board{}); ok || !errors.Is(err, ErrAbsent) {
		t.Fatalf("no sources: %v, %v; want absent", ok, err)
	}
	gpio, usb := fakeKeys{hal.ButtonMic, make(chan hal.ButtonEvent)}, fakeKeys{hal.ButtonVolumeUp, make(chan hal.ButtonEvent)}
	s := &Buttons{Log: log, srcs: []hal.Buttons{gpio, usb}, names: []string{"gpio", "input"}}
	b := &hal.Board{}
	if ok, err := s.Part().Attach(context.Background(), b); !ok || err != nil {
		t.Fatalf("two sources: %v, %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, src := range []fakeKeys{usb, gpio} {
		src.ch <- hal.ButtonEvent{Button: src.name, Kind: hal.Press, Pressed: true}
		if ev, err := b.Buttons.ReadEvent(ctx); err != nil || ev.Button != src.name {
			t.Fatalf("event %+v, %v; want %s", ev, err, src.name)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
