package evdev

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"roombox/hal/linux/evdev/uinput"
)

// TestCheckUinput runs the real kernel path where /dev/uinput exists. This machine's
// sandbox has none; the VM lab (uinput module in its initramfs) runs the same check.
func TestCheckUinput(t *testing.T) {
	if _, err := os.Stat(uinput.Path); errors.Is(err, fs.ErrNotExist) {
		t.Skip("no /dev/uinput here; the VM lab runs this check against the real uinput module")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	rep, err := CheckUinput(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (%s): %d events, press read back after %v", rep.Device.Path, rep.Device.Name, len(rep.Events), rep.Latency)
}
