package acoustic

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MeetingRoom is a small meeting room with the box a metre from the wall: 40 ms from the
// speaker to the microphone (sound card buffers and air), T60 250 ms, the reverberation as
// loud as the direct sound, the echo 6 dB below the speaker drive, a quiet fan.
var MeetingRoom = Config{Delay: 40 * time.Millisecond, T60: 250 * time.Millisecond, ReverbDB: 0,
	CouplingDB: -6, NoiseDBFS: -70, Seed: 1}

// ParseSpec reads a room from `roombox run --sim-room`: "on" is MeetingRoom; otherwise a
// comma-separated list of key=value pairs changing MeetingRoom: delay and t60 (durations,
// "120ms"), reverb, coupling (dB), clip and noise (dBFS, 0 for none) and seed. An unknown
// key or a bad value is an error naming it; the room's own limits are checked by New.
func ParseSpec(spec string) (Config, error) {
	cfg := MeetingRoom
	if spec == "on" {
		return cfg, nil
	}
	for kv := range strings.SplitSeq(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return Config{}, fmt.Errorf("acoustic: room %q: %q is not key=value (keys: delay, t60, reverb, coupling, clip, noise, seed)", spec, kv)
		}
		var err error
		switch k {
		case "delay":
			cfg.Delay, err = time.ParseDuration(v)
		case "t60":
			cfg.T60, err = time.ParseDuration(v)
		case "reverb":
			cfg.ReverbDB, err = strconv.ParseFloat(v, 64)
		case "coupling":
			cfg.CouplingDB, err = strconv.ParseFloat(v, 64)
		case "clip":
			cfg.ClipDBFS, err = strconv.ParseFloat(v, 64)
		case "noise":
			cfg.NoiseDBFS, err = strconv.ParseFloat(v, 64)
		case "seed":
			cfg.Seed, err = strconv.ParseUint(v, 10, 64)
		default:
			return Config{}, fmt.Errorf("acoustic: room %q: unknown key %q (keys: delay, t60, reverb, coupling, clip, noise, seed)", spec, k)
		}
		if err != nil {
			return Config{}, fmt.Errorf("acoustic: room %q: %s: %w", spec, k, err)
		}
	}
	if _, err := New(cfg); err != nil {
		return Config{}, fmt.Errorf("acoustic: room %q: %w", spec, err)
	}
	return cfg, nil
}
