package vmlab

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestLoadOrder checks modules come after their dependencies, once each, whatever the order
// they are asked for, with dashes and underscores as one; and that cycles and unknown modules
// are errors. (TestLab loads the real vivid chain in the order this gives.)
func TestLoadOrder(t *testing.T) {
	deps := map[string][]string{
		"vivid":            {"videodev", "videobuf2_common", "v4l2-tpg"},
		"videobuf2_common": {"mc", "videodev"},
		"videodev":         {"mc"},
		"mc":               nil,
		"v4l2_tpg":         nil,
		"snd_aloop":        {"snd-pcm", "snd"},
		"snd_pcm":          {"snd"},
		"snd":              nil,
		"loop_a":           {"loop_b"},
		"loop_b":           {"loop_a"},
	}
	lookup := func(name string) (string, []string, error) {
		d, ok := deps[name]
		if !ok {
			return "", nil, errors.New("no module " + name)
		}
		return name + ".ko", d, nil
	}
	order, err := loadOrder([]string{"snd-aloop", "vivid", "videodev"}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 8 {
		t.Errorf("order %v: want each of the 8 modules once", order)
	}
	for m, ds := range deps {
		i := slices.Index(order, m+".ko")
		if i < 0 {
			continue
		}
		for _, d := range ds {
			if j := slices.Index(order, moduleName(d)+".ko"); j < 0 || j > i {
				t.Errorf("order %v: %s before its dependency %s", order, m, d)
			}
		}
	}
	if _, err := loadOrder([]string{"loop_a"}, lookup); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("a cycle: err %v, want a cycle error", err)
	}
	if _, err := loadOrder([]string{"vivid", "nosuch"}, lookup); err == nil {
		t.Error("an unknown module: no error")
	}
}

// TestOpenKernelMissing checks a missing cache is ErrNoKernel, whose message names the make
// target that fills it.
func TestOpenKernelMissing(t *testing.T) {
	_, err := OpenKernel(t.TempDir())
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "make lab-kernel") {
		t.Errorf("OpenKernel(empty dir) = %v, want ErrNoKernel naming make lab-kernel", err)
	}
}
