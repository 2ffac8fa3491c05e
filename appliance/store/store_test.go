package store_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"roombox/appliance/store"
)

func openTestStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreConfigRoundTrip(t *testing.T) {
	s := openTestStore(t)

	c, err := s.LoadConfig()
	if err != nil {
		t.Fatalf("LoadConfig on an empty dir: %v", err)
	}
	if c.Provisioned() || !reflect.DeepEqual(c, store.Config{}) {
		t.Fatalf("LoadConfig on an empty dir = %+v, want zero and not provisioned", c)
	}

	at := time.Date(2026, 7, 28, 9, 30, 0, 0, time.UTC)
	want := store.Config{URL: "wss://lk.example.com", Token: "a.b.c", ProvisionedAt: at}
	if err := s.SaveConfig(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want.Version = 1
	if !got.ProvisionedAt.Equal(at) {
		t.Errorf("ProvisionedAt = %v, want %v", got.ProvisionedAt, at)
	}
	got.ProvisionedAt = at
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadConfig = %+v, want %+v", got, want)
	}
	if !got.Provisioned() {
		t.Error("Provisioned() = false after SaveConfig")
	}

	path := filepath.Join(s.Dir(), store.ConfigFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v, want 0600 (it holds the token)", path, fi.Mode().Perm())
	}

	// The on-disk format other tools and later versions rely on.
	var raw map[string]any
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	wantRaw := map[string]any{"version": 1.0, "url": "wss://lk.example.com", "token": "a.b.c", "provisioned_at": "2026-07-28T09:30:00Z"}
	if len(raw) != len(wantRaw) {
		t.Errorf("config.json = %s, want keys %v", data, wantRaw)
	}
	for k, v := range wantRaw {
		if raw[k] != v {
			t.Errorf("config.json %q = %v, want %v", k, raw[k], v)
		}
	}
}

func TestStoreStateRoundTrip(t *testing.T) {
	s := openTestStore(t)
	st, err := s.LoadState()
	if err != nil || st.MicMuted {
		t.Fatalf("LoadState on an empty dir = %+v, %v; want unmuted, no error", st, err)
	}
	if err := s.SaveState(store.SavedState{MicMuted: true}); err != nil {
		t.Fatal(err)
	}
	// A second store on the same dir, as after a restart.
	s2, err := store.Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	st, err = s2.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if !st.MicMuted || st.Version != 1 {
		t.Errorf("LoadState after restart = %+v, want muted, version 1", st)
	}
	data, _ := os.ReadFile(filepath.Join(s.Dir(), store.StateFile))
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["version"] != 1.0 || raw["mic_muted"] != true || len(raw) != 2 {
		t.Errorf("state.json = %s, want {\"version\":1,\"mic_muted\":true}", data)
	}
}

func TestStoreLoadErrors(t *testing.T) {
	tests := []struct {
		name, file, content, want string
	}{
		{"config corrupt", store.ConfigFile, `{"version":1,"url":`, "corrupt JSON"},
		{"config empty", store.ConfigFile, "", "empty file"},
		{"config not an object", store.ConfigFile, `[1,2]`, "corrupt JSON"},
		{"config no version", store.ConfigFile, `{"url":"wss://h","token":"a.b.c"}`, `no "version" field`},
		{"config future version", store.ConfigFile, `{"version":2,"url":"wss://h"}`, "unsupported version 2 (this build reads version 1)"},
		{"config wrong type", store.ConfigFile, `{"version":1,"url":42}`, "cannot unmarshal number"},
		{"state corrupt", store.StateFile, `{"version":1,"mic_muted":tru`, "corrupt JSON"},
		{"state future version", store.StateFile, `{"version":7,"mic_muted":true}`, "unsupported version 7"},
		{"state wrong type", store.StateFile, `{"version":1,"mic_muted":"yes"}`, "cannot unmarshal string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTestStore(t)
			path := filepath.Join(s.Dir(), tt.file)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var err error
			if tt.file == store.ConfigFile {
				var c store.Config
				c, err = s.LoadConfig()
				if !reflect.DeepEqual(c, store.Config{}) {
					t.Errorf("LoadConfig = %+v on error, want zero", c)
				}
			} else {
				_, err = s.LoadState()
			}
			if err == nil {
				t.Fatal("load succeeded")
			}
			if !strings.HasPrefix(err.Error(), "store: ") || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to name %s and say %q", err, path, tt.want)
			}
		})
	}
}

func TestStoreIgnoresUnknownFields(t *testing.T) {
	s := openTestStore(t)
	path := filepath.Join(s.Dir(), store.StateFile)
	if err := os.WriteFile(path, []byte(`{"version":1,"mic_muted":true,"camera_off":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := s.LoadState()
	if err != nil || !st.MicMuted {
		t.Fatalf("LoadState = %+v, %v", st, err)
	}
}

func TestOpenStoreErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dir, want string }{
		{"missing", filepath.Join(dir, "nope"), "does not exist"},
		{"a file", file, "not a directory"},
		{"under a file", filepath.Join(file, "sub"), "not a directory"},
		{"empty", "", "state dir not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.Open(tt.dir)
			if err == nil {
				t.Fatal("OpenStore succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.dir) {
				t.Errorf("error = %q, want it to name %q and say %q", err, tt.dir, tt.want)
			}
		})
	}
}

func TestCreateStateDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	if err := store.CreateStateDir(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir = %v, %v; want a 0700 directory", fi, err)
	}
	if err := store.CreateStateDir(dir); err != nil {
		t.Fatalf("CreateStateDir on an existing dir: %v", err)
	}

	err = store.CreateStateDir(filepath.Join(root, "missing", "state"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), `parent directory "`+filepath.Join(root, "missing")+`" does not exist`) {
		t.Errorf("missing parent: error = %v", err)
	}
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o600)
	if err := store.CreateStateDir(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: error = %v", err)
	}
	if err := store.CreateStateDir(filepath.Join(file, "state")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("under a file: error = %v", err)
	}
}

func TestSaveConfigUnwritableKeepsOld(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	s := openTestStore(t)
	if err := s.SaveConfig(store.Config{URL: "wss://old", Token: "a.b.c"}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(s.Dir(), store.ConfigFile))
	os.Chmod(s.Dir(), 0o500)
	defer os.Chmod(s.Dir(), 0o700)
	err := s.SaveConfig(store.Config{URL: "wss://new", Token: "d.e.f"})
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("SaveConfig in a read-only dir: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(s.Dir(), store.ConfigFile))
	if string(before) != string(after) {
		t.Errorf("config changed: %s -> %s", before, after)
	}
}
