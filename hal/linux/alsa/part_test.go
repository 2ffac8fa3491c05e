package alsa

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"roombox/hal"
	"roombox/hal/linux"
)

func TestPartsPresentAbsentFailed(t *testing.T) {
	present := &fakePCM{par: mono16}
	refused := &fakePCM{par: Params{Format: S16, Channels: 1, Rate: 44100}}
	useFakes(t, openResult{p: present}, openResult{err: syscall.ENOENT}, openResult{p: refused})
	var b hal.Board

	ok, err := MicPart(Config{Device: "plughw:1,0"}).Attach(context.Background(), &b)
	if !ok || err != nil {
		t.Fatalf("mic on an openable device: %v, %v", ok, err)
	}
	if _, isReopening := b.Mic.(*ReopeningMic); !isReopening || !present.isClosed() {
		t.Errorf("board mic %T, probe closed %v; want a *ReopeningMic, the probe closed", b.Mic, present.isClosed())
	}
	sp := SpeakerPart(Config{})
	if ok, err := sp.Attach(context.Background(), &b); ok || !errors.Is(err, linux.ErrAbsent) || b.Speaker != nil {
		t.Errorf("speaker with no device: %v, %v, board speaker %v; want absent", ok, err, b.Speaker)
	}
	if ok, err := sp.Attach(context.Background(), &b); ok || err == nil || errors.Is(err, linux.ErrAbsent) {
		t.Errorf("speaker refusing 48 kHz: %v, %v; want failed", ok, err)
	}
}

func TestPartDescribesNegotiation(t *testing.T) {
	useFakes(t, openResult{p: &fakePCM{par: mono16}})
	p := SpeakerPart(Config{})
	if _, err := p.Attach(context.Background(), &hal.Board{}); err != nil {
		t.Fatal(err)
	}
	if d := p.(linux.Describer).Describe(); !strings.HasPrefix(d, "default: S16_LE 1 ch 48000 Hz") {
		t.Errorf("Describe() = %q", d)
	}
}
