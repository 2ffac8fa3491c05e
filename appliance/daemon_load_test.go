package appliance

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"roombox/appliance/store"
	"strings"
	"testing"
)

func TestDaemonLoadRecoversCorruptState(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveState(store.SavedState{MicMuted: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveState(store.SavedState{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Dir(), store.StateFile), []byte(`{"version":1,"mic`), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := &daemon{log: slog.New(slog.NewTextHandler(&logs, nil)), store: st}
	if err := d.load(); err != nil {
		t.Fatalf("load with a corrupt state.json: %v (the daemon would exit and restart into it)", err)
	}
	if !d.saved.MicMuted {
		t.Errorf("saved state = %+v, want the last good copy (muted)", d.saved)
	}
	if !strings.Contains(logs.String(), "corrupt file recovered") || !strings.Contains(logs.String(), "using the last good copy") {
		t.Errorf("log does not report the recovery:\n%s", logs.String())
	}
}

// With no good copy of state.json the device cannot know its mute state: it starts muted,
// with the camera off (privacy fails closed).
func TestDaemonLoadCorruptStateWithoutCopyStartsMuted(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Dir(), store.StateFile), []byte(`garbage`), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := &daemon{log: slog.New(slog.NewTextHandler(&logs, nil)), store: st}
	if err := d.load(); err != nil {
		t.Fatalf("load: %v", err)
	}
	if !d.saved.MicMuted || !d.saved.CameraOff {
		t.Errorf("saved state = %+v, want mic muted and camera off", d.saved)
	}
	if !strings.Contains(logs.String(), "starting muted with the camera off") {
		t.Errorf("log does not say why it starts muted:\n%s", logs.String())
	}
}
