//go:build linux

package vmlab

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestInitramfsUnpacks writes an archive and unpacks it with busybox cpio (the newc reader
// the lab installs anyway): files with their contents and modes, symlinks and implicit parent
// directories must come out as written. TestLab then boots such an archive for real.
func TestInitramfsUnpacks(t *testing.T) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("no busybox: run make deps (busybox-static)")
	}
	host := filepath.Join(t.TempDir(), "host-file")
	if err := os.WriteFile(host, []byte("from the host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := NewInitramfs()
	r.AddFile("/bin/tool", host, 0o755)
	r.AddBytes("/etc/deep/er/conf", []byte("abc"), 0o644) // 3 bytes: padding after the body
	r.AddBytes("/empty", nil, 0o600)
	r.AddSymlink("/bin/link", "tool")
	r.AddDir("/proc")
	r.AddBytes("/etc/replaced", []byte("old"), 0o644)
	r.AddBytes("/etc/replaced", []byte("new"), 0o644)
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "sub", "f"), []byte("in a tree"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/f", filepath.Join(tree, "l")); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTree("/usr/share/t", tree); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	n, err := r.WriteTo(&archive)
	if err != nil || n != int64(archive.Len()) || n%4 != 0 {
		t.Fatalf("WriteTo = %d, %v; wrote %d bytes, want the count, a multiple of 4", n, err, archive.Len())
	}

	out := t.TempDir()
	cmd := exec.Command(busybox, "cpio", "-i", "-d", "-H", "newc")
	cmd.Dir, cmd.Stdin = out, &archive
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("busybox cpio -i: %v\n%s", err, b)
	}
	for path, want := range map[string]string{"bin/tool": "from the host\n", "etc/deep/er/conf": "abc", "empty": "",
		"etc/replaced": "new", "usr/share/t/sub/f": "in a tree"} {
		if got, err := os.ReadFile(filepath.Join(out, path)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	for path, want := range map[string]os.FileMode{"bin/tool": 0o755, "etc/deep/er/conf": 0o644, "empty": 0o600,
		"proc": os.ModeDir | 0o755, "etc/deep": os.ModeDir | 0o755, "usr/share/t/sub/f": 0o640} {
		if fi, err := os.Lstat(filepath.Join(out, path)); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, want)
		}
	}
	for link, want := range map[string]string{"bin/link": "tool", "usr/share/t/l": "sub/f"} {
		if target, err := os.Readlink(filepath.Join(out, link)); err != nil || target != want {
			t.Errorf("%s -> %q, %v; want %s", link, target, err, want)
		}
	}
}

// TestSharedLibraries checks the loader and libraries found for a dynamic program (the host's
// sh) and none for a static one (busybox-static).
func TestSharedLibraries(t *testing.T) {
	sh, _ := exec.LookPath("sh")
	sh, _ = filepath.EvalSymlinks(sh)
	libs, err := sharedLibraries(sh)
	if err != nil {
		t.Fatal(err)
	}
	hasLibc := slices.ContainsFunc(libs, func(l string) bool { return strings.Contains(filepath.Base(l), "libc.so") })
	hasLoader := slices.ContainsFunc(libs, func(l string) bool { return strings.HasPrefix(filepath.Base(l), "ld-linux") })
	if !hasLibc || !hasLoader {
		t.Errorf("sharedLibraries(%s) = %v, want libc and the loader", sh, libs)
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("no busybox: run make deps (busybox-static)")
	}
	if libs, err := sharedLibraries(busybox); err != nil || len(libs) != 0 {
		t.Errorf("sharedLibraries(%s) = %v, %v; want none (static)", busybox, libs, err)
	}
}
