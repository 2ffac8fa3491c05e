package acoustic

import (
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	if cfg, err := ParseSpec("on"); err != nil || cfg != MeetingRoom {
		t.Fatalf(`ParseSpec("on") = %+v, %v; want MeetingRoom`, cfg, err)
	}
	cfg, err := ParseSpec("delay=100ms, t60=300ms,coupling=-3,clip=-12,noise=0,reverb=-15,seed=7")
	want := Config{Delay: 100 * time.Millisecond, T60: 300 * time.Millisecond, CouplingDB: -3, ClipDBFS: -12,
		NoiseDBFS: 0, ReverbDB: -15, Seed: 7}
	if err != nil || cfg != want {
		t.Fatalf("ParseSpec = %+v, %v; want %+v", cfg, err, want)
	}
	for spec, wantErr := range map[string]string{
		"delay":            "not key=value",
		"echo=3":           `unknown key "echo"`,
		"delay=soon":       "delay",
		"coupling=-x":      "coupling",
		"delay=2s":         "delay 2s out of range",
		"noise=3,t60=10ms": "must be at most 0 dBFS",
	} {
		if _, err := ParseSpec(spec); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseSpec(%q) = %v, want an error with %q", spec, err, wantErr)
		}
	}
}
