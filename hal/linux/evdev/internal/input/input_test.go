package input

import (
	"bytes"
	"testing"
)

// The numbers the kernel headers give (printed by a C program on amd64, the same on
// arm and arm64: asm-generic/ioctl.h).
func TestIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint
	}{
		{"EVIOCGNAME(256)", EVIOCGNAME(256), 0x81004506},
		{"EVIOCGKEY(96)", EVIOCGKEY(KeyBitmapBytes), 0x80604518},
		{"EVIOCGBIT(EV_KEY, 96)", EVIOCGBIT(EvKey, KeyBitmapBytes), 0x80604521},
		{"EVIOCGRAB", EVIOCGRAB, 0x40044590},
		{"UI_DEV_CREATE", UI_DEV_CREATE, 0x5501},
		{"UI_DEV_DESTROY", UI_DEV_DESTROY, 0x5502},
		{"UI_DEV_SETUP", UI_DEV_SETUP, 0x405c5503},
		{"UI_SET_EVBIT", UI_SET_EVBIT, 0x40045564},
		{"UI_SET_KEYBIT", UI_SET_KEYBIT, 0x40045565},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// A KEY_MICMUTE press as the kernel lays it out on each word size (time 1 s 2 us).
func TestDecodeBothLayouts(t *testing.T) {
	for _, c := range []struct {
		word int
		raw  []byte
	}{
		{8, []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 248, 0, 1, 0, 0, 0}},
		{4, []byte{1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 248, 0, 1, 0, 0, 0}},
	} {
		if len(c.raw) != EventSize(c.word) {
			t.Fatalf("word %d: layout has %d bytes, EventSize says %d", c.word, len(c.raw), EventSize(c.word))
		}
		want := Event{Type: EvKey, Code: KeyMicMute, Value: ValuePress}
		if got := Decode(c.raw, c.word); got != want {
			t.Errorf("word %d: Decode = %+v, want %+v", c.word, got, want)
		}
		b := make([]byte, EventSize(c.word))
		Encode(b, c.word, Event{Type: EvKey, Code: KeyMicMute, Value: -1})
		if got := Decode(b, c.word); got.Value != -1 || got.Code != KeyMicMute {
			t.Errorf("word %d: round trip = %+v", c.word, got)
		}
		if !bytes.Equal(b[:2*c.word], make([]byte, 2*c.word)) {
			t.Errorf("word %d: Encode left a time: % x", c.word, b)
		}
	}
}

func TestUinputSetupSize(t *testing.T) {
	if got := UI_DEV_SETUP >> 16 & 0x3fff; got != 92 {
		t.Errorf("struct uinput_setup is %d bytes here, the kernel's is 92", got)
	}
}
