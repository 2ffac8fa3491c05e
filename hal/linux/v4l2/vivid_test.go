package v4l2

import (
	"errors"
	"testing"

	"roombox/hal"
)

// vividLuma is the luma of vivid's 75 % bars, BT.601 limited range.
var vividLuma = [8]byte{180, 162, 131, 112, 84, 65, 35, 16}

// vividLike draws bars under an OSD line whose pixels depend on seq, as vivid does.
func vividLike(w, h int, seq byte, bars [8]byte) *hal.Frame {
	f := &hal.Frame{}
	f.Ensure(w, h)
	for y := range h {
		for x := range w {
			f.Y[y*f.StrideY+x] = bars[x*8/w]
		}
	}
	for y := 16; y < 32; y++ {
		for x := 16; x < 16+8*int(seq%8+1); x++ {
			f.Y[y*f.StrideY+x] = 235
		}
	}
	return f
}

func TestCheckColourBars(t *testing.T) {
	f := vividLike(320, 180, 0, vividLuma)
	l, err := CheckColourBars(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range l {
		if l[i] != int(vividLuma[i]) {
			t.Errorf("bar %d luma %d, want %d", i, l[i], vividLuma[i])
		}
	}
	swapped := vividLuma
	swapped[3], swapped[4] = swapped[4], swapped[3]
	reversed := [8]byte{}
	for i := range reversed {
		reversed[i] = vividLuma[7-i]
	}
	for name, bars := range map[string][8]byte{
		"two bars swapped": swapped, "reversed": reversed, "flat grey": {128, 128, 128, 128, 128, 128, 128, 128},
		"100 % bars shifted dark": {120, 100, 80, 60, 40, 30, 20, 16},
	} {
		if _, err := CheckColourBars(vividLike(320, 180, 0, bars)); !errors.Is(err, ErrNotBars) {
			t.Errorf("%s: err = %v, want ErrNotBars", name, err)
		}
	}
}

func TestCheckAdvanced(t *testing.T) {
	a, b := vividLike(320, 180, 1, vividLuma), vividLike(320, 180, 2, vividLuma)
	if err := CheckAdvanced(a, b); err != nil {
		t.Errorf("advanced frames: %v", err)
	}
	if err := CheckAdvanced(a, vividLike(320, 180, 1, vividLuma)); err == nil {
		t.Error("the same frame twice passed")
	}
	dim := vividLuma
	dim[0] -= 20
	if err := CheckAdvanced(a, vividLike(320, 180, 2, dim)); err == nil {
		t.Error("changed bars passed")
	}
}
