package store_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roombox/appliance/store"
)

// badContents are corrupt versions of a good file, by how they come about.
func badContents(good []byte) map[string][]byte {
	return map[string][]byte{
		"corrupt JSON":  []byte(`{"version":1,"mic_muted":tru`),
		"truncated":     good[:len(good)/2],
		"wrong version": []byte(`{"version":9,"mic_muted":true}`),
		"empty":         {},
	}
}

func vol(v int) *int { return &v }

func TestStoreCorruptStateGivesLastGood(t *testing.T) {
	for name := range badContents(nil) {
		t.Run(name, func(t *testing.T) {
			s := openTestStore(t)
			cfg := store.Config{URL: "wss://h", Token: "a.b.c"}
			older := store.SavedState{MicMuted: true, Volume: vol(30)}
			for _, err := range []error{s.SaveConfig(cfg), s.SaveState(older), s.SaveState(store.SavedState{Volume: vol(40)})} {
				if err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(s.Dir(), store.StateFile)
			good, _ := os.ReadFile(path)
			bad := badContents(good)[name]
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}

			st, err := s.LoadState()
			ce, ok := errors.AsType[*store.CorruptError](err)
			if !ok {
				t.Fatalf("LoadState error = %v, want a *CorruptError", err)
			}
			if !st.MicMuted || st.SpeakerVolume() != 30 {
				t.Errorf("LoadState = %+v, want the last good copy (muted, volume 30)", st)
			}
			if ce.Path != path || ce.Aside != path+".corrupt" || ce.LastGood != nil || ce.Cleanup != nil {
				t.Errorf("CorruptError = %+v", ce)
			}
			for _, want := range []string{"store: " + path + ": ", "kept as " + path + ".corrupt", "using the last good copy " + path + ".last-good"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			checkStoreFile(t, path+".corrupt", bad)
			checkStoreFile(t, path+".last-good", nil)

			// The next start is clean, and nothing stored before is lost.
			st, err = s.LoadState()
			if err != nil || !st.MicMuted || st.SpeakerVolume() != 30 {
				t.Errorf("LoadState after recovery = %+v, %v; want the last good copy, no error", st, err)
			}
			checkStoreFile(t, path, nil)
			if c, err := s.LoadConfig(); err != nil || c.URL != cfg.URL || c.Token != cfg.Token {
				t.Errorf("LoadConfig = %+v, %v; want what was stored", c, err)
			}
		})
	}
}

func TestStoreCorruptConfigGivesLastGood(t *testing.T) {
	s := openTestStore(t)
	first := store.Config{URL: "wss://first", Token: "a.b.c"}
	if err := s.SaveConfig(first); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveConfig(store.Config{URL: "wss://second", Token: "d.e.f"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.Dir(), store.ConfigFile)
	if err := os.WriteFile(path, []byte(`{"version":1,"url":"wss://sec`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := s.LoadConfig()
	if _, ok := errors.AsType[*store.CorruptError](err); !ok || !strings.Contains(err.Error(), "corrupt JSON") {
		t.Fatalf("LoadConfig error = %v, want a *CorruptError saying corrupt JSON", err)
	}
	if c.URL != first.URL || c.Token != first.Token {
		t.Errorf("LoadConfig = %+v, want the last good copy %+v", c, first)
	}
	// The aside copy holds the token too: 0600 whatever the corrupt file's mode was.
	checkStoreFile(t, path+".corrupt", []byte(`{"version":1,"url":"wss://sec`))
	checkStoreFile(t, path, nil)
}

func TestStoreCorruptWithoutLastGood(t *testing.T) {
	s := openTestStore(t)
	path := filepath.Join(s.Dir(), store.StateFile)
	if err := os.WriteFile(path, []byte("\x00\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := s.LoadState()
	ce, ok := errors.AsType[*store.CorruptError](err)
	if !ok || !errors.Is(ce.LastGood, fs.ErrNotExist) || !strings.Contains(err.Error(), "no last good copy: using defaults") {
		t.Fatalf("LoadState error = %v, want a *CorruptError saying there is no last good copy", err)
	}
	if st != (store.SavedState{}) {
		t.Errorf("LoadState = %+v, want the zero state", st)
	}
	checkStoreFile(t, path+".corrupt", []byte("\x00\x00\x00"))
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the corrupt file is still in place: %v", err)
	}
	if st, err := s.LoadState(); err != nil || st != (store.SavedState{}) {
		t.Errorf("LoadState on the next start = %+v, %v; want zero, no error", st, err)
	}
}

func TestStoreLastGoodIsThePreviousGoodFile(t *testing.T) {
	s := openTestStore(t)
	path := filepath.Join(s.Dir(), store.StateFile)
	for v := range 3 {
		if err := s.SaveState(store.SavedState{Volume: vol(10 * v)}); err != nil {
			t.Fatal(err)
		}
	}
	prev := []byte("{\n  \"version\": 1,\n  \"mic_muted\": false,\n  \"volume\": 10\n}\n")
	checkStoreFile(t, path+".last-good", prev)

	// A corrupt file never displaces the good copy, and does not stop a save.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveState(store.SavedState{Volume: vol(50)}); err != nil {
		t.Fatal(err)
	}
	checkStoreFile(t, path+".last-good", prev)
	if st, err := s.LoadState(); err != nil || st.SpeakerVolume() != 50 {
		t.Errorf("LoadState = %+v, %v", st, err)
	}
}

// checkStoreFile checks that path has mode 0600 and, if want is not nil, holds want.
func checkStoreFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want != nil && !bytes.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", path, got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, %v; want 0600", path, fi.Mode().Perm(), err)
	}
}

func TestOpenStoreRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{".state.json.tmp-1", ".config.json.tmp-22", ".state.json.last-good.tmp-3", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Open(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "notes.txt" {
		t.Errorf("after OpenStore the state dir holds %v, want only notes.txt", ents)
	}
}
