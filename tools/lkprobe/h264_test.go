package main

import (
	"encoding/hex"
	"reflect"
	"testing"
)

// SPSs written by x264 (ffmpeg -c:v libx264 -profile:v P), emulation prevention bytes included.
func TestParseSPS(t *testing.T) {
	for _, tc := range []struct {
		name, hex     string
		profile       byte
		width, height int
	}{
		{"constrained baseline 640x360 (no cropping)", "6742c01ed900a02ff970110000030001000003003c0f162e48", 66, 640, 360},
		{"high 1280x720", "6764001facd9405005bb0110000003001000000303c0f1831960", 100, 1280, 720},
		{"main 1920x1080 (1088 cropped by 8)", "674d4028eca03c0113f2e022000003000200000300781e30632c", 77, 1920, 1080},
		{"high 4:4:4 320x180 (luma crop units)", "67f4000d919b282833f1b80880000003008000001e078a14cb", 244, 320, 180},
		{"high interlaced 720x576 (field pairs)", "6764001facd940b424d80880000003008000001e0f8b16cb", 100, 720, 576},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nal, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseSPS(nal)
			if err != nil {
				t.Fatal(err)
			}
			if got.Profile != tc.profile || got.Width != tc.width || got.Height != tc.height {
				t.Fatalf("got profile %d %dx%d, want profile %d %dx%d", got.Profile, got.Width, got.Height, tc.profile, tc.width, tc.height)
			}
			for n := 1; n < 8; n++ { // cut inside the fields the size depends on
				if _, err := parseSPS(nal[:n]); err == nil {
					t.Fatalf("SPS cut to %d bytes parsed without error", n)
				}
			}
		})
	}
}

func TestRTPNALs(t *testing.T) {
	type nal struct {
		typ  byte
		data string
	}
	collect := func(payload []byte) (got []nal) {
		rtpNALs(payload, func(typ byte, b []byte) { got = append(got, nal{typ, hex.EncodeToString(b)}) })
		return got
	}
	for _, tc := range []struct {
		name    string
		payload string
		want    []nal
	}{
		{"single IDR", "65aabb", []nal{{5, "65aabb"}}},
		{"STAP-A SPS+PPS", "18" + "0003" + "6742c0" + "0002" + "68ce", []nal{{7, "6742c0"}, {8, "68ce"}}},
		{"STAP-A truncated", "18" + "0003" + "6742c0" + "0009" + "68ce", []nal{{7, "6742c0"}}},
		{"FU-A start of IDR", "7c85" + "aabb", []nal{{5, "65aabb"}}},
		{"FU-A middle", "7c05" + "aabb", nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := hex.DecodeString(tc.payload)
			if got := collect(p); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
