// Package atomicfile writes files so that, after a crash or power cut, a reader sees either
// the old content or the new, never a mix: the data goes to a temporary file in the same
// directory, is flushed to stable storage, renamed over the target, and the directory entry
// is flushed too. Modelled on tailscale's atomicfile.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tempInfix marks temporary files: ".NAME" + tempInfix + a random suffix.
const tempInfix = ".tmp-"

// write is the data-writing step, replaceable by tests to simulate a failing disk.
var write = func(f *os.File, data []byte) (int, error) { return f.Write(data) }

// WriteFile writes data to path atomically, with permission bits perm (not subject to the
// umask). The target, if it exists, must be a regular file. On any error the target keeps
// its old content (or stays absent) and the temporary file is removed.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("atomicfile: %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+tempInfix+"*")
	if err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the error is the earlier one
			os.Remove(tmp)
		}
	}()
	if _, err := write(f, data); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		// The rename happened: the new content is in place but its directory entry may not
		// be on stable storage yet. Report it; the temporary file is gone already.
		return fmt.Errorf("atomicfile: write %s: sync directory: %w", path, err)
	}
	return nil
}

// Link makes newpath a hard link to the file at oldpath, atomically replacing what newpath
// was: a reader of newpath sees its old file or the new link, never neither. The link is
// made under a temporary name in newpath's directory, renamed over newpath, and the
// directory is flushed. Both paths must be in the same directory.
func Link(oldpath, newpath string) (err error) {
	dir, base := filepath.Split(newpath)
	if dir == "" {
		dir = "."
	}
	// Renaming a link over another link to the same file does nothing (POSIX), which would
	// leave the temporary link behind.
	if o, err := os.Stat(oldpath); err == nil {
		if n, err := os.Lstat(newpath); err == nil && os.SameFile(o, n) {
			return nil
		}
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s%s%d", base, tempInfix, rand.Uint64()))
	if err := os.Link(oldpath, tmp); err != nil {
		return fmt.Errorf("atomicfile: link %s: %w", newpath, err)
	}
	if err := os.Rename(tmp, newpath); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: link %s: %w", newpath, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: link %s: sync directory: %w", newpath, err)
	}
	return nil
}

// RemoveTemps removes the temporary files that WriteFile and Link left beside path when
// their process died mid-way (a crash or power cut leaves them; nothing else removes them).
// Call it only while no other process writes path: it would remove that writer's file.
func RemoveTemps(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: remove temporary files of %s: %w", path, err)
	}
	prefix := "." + base + tempInfix
	var errs []error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("atomicfile: remove temporary files of %s: %w", path, err)
	}
	return nil
}

// syncDir flushes a directory's entries to stable storage. Filesystems that cannot sync a
// directory (EINVAL) are tolerated.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, fs.ErrInvalid) {
		err = nil
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
