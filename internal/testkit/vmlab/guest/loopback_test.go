//go:build vmlabguest && linux

package guest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// loopbackCard is the card number of snd-aloop's card in /proc/asound/cards.
func loopbackCard(t *testing.T) int {
	t.Helper()
	cards, err := os.ReadFile("/proc/asound/cards")
	if err != nil {
		t.Fatal(err)
	}
	card := -1
	for line := range strings.Lines(string(cards)) {
		// " 0 [Loopback       ]: Loopback - Loopback"
		num, rest, ok := strings.Cut(strings.TrimSpace(line), " [")
		id, _, _ := strings.Cut(rest, "]")
		if n, err := strconv.Atoi(num); ok && err == nil && strings.TrimSpace(id) == "Loopback" {
			card = n
		}
	}
	if card < 0 {
		t.Fatal("no Loopback card in /proc/asound/cards")
	}
	return card
}

// TestLoopback checks snd-aloop made its card: /proc/asound/cards lists Loopback, and its
// two PCM devices have playback and capture nodes (what goes into one device's playback comes
// out of the other's capture).
func TestLoopback(t *testing.T) {
	card := loopbackCard(t)
	for _, node := range []string{"controlC%d", "pcmC%dD0p", "pcmC%dD0c", "pcmC%dD1p", "pcmC%dD1c"} {
		p := "/dev/snd/" + fmt.Sprintf(node, card)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("loopback card %d: %v", card, err)
		} else if fi.Mode()&os.ModeCharDevice == 0 {
			t.Errorf("%s is %v, want a character device", p, fi.Mode())
		}
	}
}
