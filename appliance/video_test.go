package appliance

import (
	"slices"
	"testing"
)

// TestShareDropsTheTopLayerFirst: the video budget goes to the smallest layer first; a larger
// layer is sent while what is left carries 40 % of its bitrate and comes back only at 55 %
// (no flapping at the edge); while a larger layer is off, what is left over goes to the
// largest layer sent, up to 2.5 times its bitrate, so the send rate can grow into a rising
// estimate.
func TestShareDropsTheTopLayerFirst(t *testing.T) {
	want := []int{1_700_000, 450_000, 160_000} // f, h, q: 720p's
	all, qh := []bool{true, true, true}, []bool{false, true, true}
	for _, tc := range []struct {
		name      string
		budget    int
		sent      []bool
		wantRates []int
		wantSent  []bool
	}{
		{"everything fits", 2_310_000, all, []int{1_700_000, 450_000, 160_000}, all},
		{"f kept at 40 % of its bitrate", 1_290_000, all, []int{680_000, 450_000, 160_000}, all},
		{"f dropped below 40 %, h takes what is left", 1_250_000, all, []int{0, 1_090_000, 160_000}, qh},
		{"f not back at 50 %, h at most 2.5 times", 1_460_000, qh, []int{0, 1_125_000, 160_000}, qh},
		{"f back at 55 %", 1_900_000, qh, []int{1_290_000, 450_000, 160_000}, all},
		{"h and f dropped", 300_000, all, []int{0, 0, 300_000}, []bool{false, false, true}},
		{"q alone, at least 40 % of its bitrate", 10_000, all, []int{0, 0, 64_000}, []bool{false, false, true}},
		{"all sent: no surplus", 9_000_000, all, []int{1_700_000, 450_000, 160_000}, all},
	} {
		rates, sent := share(tc.budget, want, tc.sent)
		if !slices.Equal(rates, tc.wantRates) || !slices.Equal(sent, tc.wantSent) {
			t.Errorf("%s: share(%d, sent %v) = %v, %v; want %v, %v", tc.name, tc.budget, tc.sent, rates, sent, tc.wantRates, tc.wantSent)
		}
	}
}
