package device

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDaemonLoadRecoversCorruptState(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SaveState(SavedState{MicMuted: true}); err != nil {
		t.Fatal(err)
	}
	if err := store.SaveState(SavedState{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store.Dir(), StateFile), []byte(`{"version":1,"mic`), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	d := &daemon{log: slog.New(slog.NewTextHandler(&logs, nil)), store: store}
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
