package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestWriteFileCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")

	if err := WriteFile(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, "one", 0o600)

	if err := WriteFile(path, []byte("two, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, "two, longer", 0o644)

	if err := WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, "", 0o600)
	checkNoTemps(t, dir)
}

func TestWriteFilePermIgnoresUmask(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix permissions")
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(path, []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, "x", 0o666)
}

func TestFailedWriteKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := WriteFile(path, []byte(`{"old":true}`), 0o600); err != nil {
		t.Fatal(err)
	}

	// The disk fills up half-way through the new content.
	errDiskFull := errors.New("no space left on device")
	orig := write
	write = func(f *os.File, data []byte) (int, error) {
		n, _ := f.Write(data[:len(data)/2])
		return n, errDiskFull
	}
	defer func() { write = orig }()

	err := WriteFile(path, []byte(`{"new":true,"padding":"xxxxxxxxxxxxxxxx"}`), 0o600)
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("WriteFile error = %v, want one wrapping %v", err, errDiskFull)
	}
	if !strings.HasPrefix(err.Error(), "atomicfile: ") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should be package-prefixed and name the path", err)
	}
	checkFile(t, path, `{"old":true}`, 0o600)
	checkNoTemps(t, dir)
}

func TestFailedRenameKeepsTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "sub")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []byte("x"), 0o600); err == nil {
		t.Fatal("WriteFile over a directory succeeded")
	}
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		t.Fatalf("target directory changed: %v %v", fi, err)
	}
	checkNoTemps(t, dir)
}

func TestWriteFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "f")
	err := WriteFile(path, []byte("x"), 0o600)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error = %v, want ErrNotExist", err)
	}
}

func TestWriteFileUnderRegularFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(file, "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("WriteFile under a regular file succeeded")
	}
	checkFile(t, file, "keep", 0o600)
}

func checkFile(t *testing.T, path, want string, perm os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
	if runtime.GOOS == "windows" {
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s mode = %v, want %v", path, fi.Mode().Perm(), perm)
	}
}

func checkNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestLinkReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	cur, keep := filepath.Join(dir, "state.json"), filepath.Join(dir, "state.json.last-good")
	if err := WriteFile(cur, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Link(cur, keep); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(cur, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFile(t, keep, "one", 0o600)
	if err := Link(cur, keep); err != nil { // replaces the older copy
		t.Fatal(err)
	}
	checkFile(t, keep, "two", 0o600)
	a, _ := os.Stat(cur)
	b, _ := os.Stat(keep)
	if !os.SameFile(a, b) {
		t.Error("Link made a copy, not a hard link")
	}
	if err := Link(cur, keep); err != nil { // already linked
		t.Fatal(err)
	}
	checkNoTemps(t, dir)

	err := Link(filepath.Join(dir, "missing"), keep)
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "atomicfile: ") {
		t.Errorf("Link of a missing file: %v", err)
	}
	checkFile(t, keep, "two", 0o600)
	checkNoTemps(t, dir)
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	// What a writer killed before its rename leaves, and files that are not its temporaries.
	stale := []string{".state.json.tmp-123", ".state.json.tmp-4567"}
	kept := []string{"state.json", ".state.json.last-good.tmp-1", ".config.json.tmp-1", "state.json.tmp-1"}
	for _, name := range append(stale, kept...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveTemps(path); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(kept)
	if !slices.Equal(got, kept) {
		t.Errorf("after RemoveTemps the directory holds %q, want %q", got, kept)
	}
	if err := RemoveTemps(filepath.Join(dir, "missing", "f")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemoveTemps in a missing directory: %v", err)
	}
}
