package vmlab

import (
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
)

// Initramfs collects the files of an initramfs and writes it as a newc cpio archive (not
// compressed: the kernel unpacks it faster than it would inflate it under TCG). Paths are
// absolute guest paths; parent directories are created implicitly. Later additions replace
// earlier ones at the same path.
type Initramfs struct {
	entries map[string]fsEntry
}

type fsEntry struct {
	mode     uint32 // type and permission bits
	hostPath string // a regular file's contents, read when written
	body     []byte // or the contents themselves (a symlink's target)
}

// NewInitramfs returns an empty initramfs.
func NewInitramfs() *Initramfs { return &Initramfs{entries: map[string]fsEntry{}} }

// AddFile copies the host file hostPath (its contents, not a symlink) to guestPath.
func (r *Initramfs) AddFile(guestPath, hostPath string, perm os.FileMode) {
	r.entries[path.Clean(guestPath)] = fsEntry{mode: modeRegular | uint32(perm.Perm()), hostPath: hostPath}
}

// AddBytes writes data to guestPath.
func (r *Initramfs) AddBytes(guestPath string, data []byte, perm os.FileMode) {
	r.entries[path.Clean(guestPath)] = fsEntry{mode: modeRegular | uint32(perm.Perm()), body: data}
}

// AddSymlink makes guestPath a symlink to target.
func (r *Initramfs) AddSymlink(guestPath, target string) {
	r.entries[path.Clean(guestPath)] = fsEntry{mode: modeSymlink | 0o777, body: []byte(target)}
}

// AddDir makes an empty directory (a mount point).
func (r *Initramfs) AddDir(guestPath string) {
	r.entries[path.Clean(guestPath)] = fsEntry{mode: modeDir | 0o755}
}

// AddExecutable copies an ELF program to guestPath with the shared libraries it loads, each at
// the path the host's loader finds it at (ldd; for another architecture's program, its
// multiarch directory), and the loader itself at its PT_INTERP path: the guest then resolves
// them exactly as the host does. A static program is copied alone.
func (r *Initramfs) AddExecutable(guestPath, hostPath string) error {
	libs, err := sharedLibraries(hostPath)
	if err != nil {
		return err
	}
	r.AddFile(guestPath, hostPath, 0o755)
	for _, l := range libs {
		r.AddFile(l, l, 0o755)
	}
	return nil
}

// AddTree copies the host directory hostDir to guestDir: its regular files, with their
// permissions, and its symlinks as they are.
func (r *Initramfs) AddTree(guestDir, hostDir string) error {
	err := filepath.WalkDir(hostDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(hostDir, p)
		if err != nil {
			return err
		}
		guest := path.Join(guestDir, filepath.ToSlash(rel))
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			r.AddSymlink(guest, target)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			r.AddFile(guest, p, fi.Mode())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmlab: initramfs: %w", err)
	}
	return nil
}

// lddLine matches the lines of ldd's output that name a file: "libx.so.1 => /path (0x...)" and
// the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)".
var lddLine = regexp.MustCompile(`^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$`)

// sharedLibraries lists the host paths of the loader and libraries a dynamic ELF program
// needs; none for a static one.
func sharedLibraries(prog string) ([]string, error) {
	f, err := elf.Open(prog)
	if err != nil {
		return nil, fmt.Errorf("vmlab: %w", err)
	}
	defer f.Close()
	var interp *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp = p
		}
	}
	switch {
	case interp == nil:
		return nil, nil
	case f.Machine != hostMachine[runtime.GOARCH]:
		return foreignLibraries(prog, f, interp)
	}
	out, err := exec.Command("ldd", prog).Output()
	if err != nil {
		return nil, fmt.Errorf("vmlab: ldd %s: %w", prog, err)
	}
	var libs []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("vmlab: %s: %s", prog, strings.TrimSpace(line))
		}
		if m := lddLine.FindStringSubmatch(line); m != nil {
			libs = append(libs, m[1])
		}
	}
	return libs, nil
}

// hostMachine is the ELF machine of the programs ldd can run.
var hostMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM}

// multiarchDirs are the directories where Debian's loader for a machine looks for libraries
// (with the multiarch packages of make cross-deps installed, the host has them too).
var multiarchDirs = map[elf.Machine][]string{
	elf.EM_AARCH64: {"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"},
	elf.EM_ARM:     {"/lib/arm-linux-gnueabihf", "/usr/lib/arm-linux-gnueabihf"},
}

// foreignLibraries does ldd's work for a program of another architecture, which ldd cannot
// run: the loader from PT_INTERP, then each DT_NEEDED library, and theirs, looked up in the
// machine's multiarch directories.
func foreignLibraries(prog string, f *elf.File, interp *elf.Prog) ([]string, error) {
	dirs, ok := multiarchDirs[f.Machine]
	if !ok {
		return nil, fmt.Errorf("vmlab: %s: no library directories known for %v", prog, f.Machine)
	}
	b, err := io.ReadAll(interp.Open())
	if err != nil {
		return nil, fmt.Errorf("vmlab: %s: PT_INTERP: %w", prog, err)
	}
	loader := strings.TrimRight(string(b), "\x00")
	if _, err := os.Stat(loader); err != nil {
		return nil, fmt.Errorf("vmlab: %s: its loader: %w (run make cross-deps)", prog, err)
	}
	libs := []string{loader}
	seen := map[string]bool{}
	queue := []*elf.File{f}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		needed, err := cur.ImportedLibraries()
		if err != nil {
			return nil, fmt.Errorf("vmlab: %s: DT_NEEDED: %w", prog, err)
		}
		for _, name := range needed {
			if seen[name] {
				continue
			}
			seen[name] = true
			i := slices.IndexFunc(dirs, func(d string) bool { _, err := os.Stat(filepath.Join(d, name)); return err == nil })
			if i < 0 {
				return nil, fmt.Errorf("vmlab: %s: %s not found in %v (run make cross-deps)", prog, name, dirs)
			}
			p := filepath.Join(dirs[i], name)
			lib, err := elf.Open(p)
			if err != nil {
				return nil, fmt.Errorf("vmlab: %w", err)
			}
			defer lib.Close()
			libs = append(libs, p)
			queue = append(queue, lib)
		}
	}
	return libs, nil
}

// WriteTo writes the archive: every directory before what it holds, paths sorted so that the
// same inputs give the same bytes.
func (r *Initramfs) WriteTo(w io.Writer) (int64, error) {
	all := map[string]fsEntry{}
	for p, e := range r.entries {
		all[p] = e
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = fsEntry{mode: modeDir | 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names) // a parent sorts before its children: it is their prefix

	cw := &countWriter{w: w}
	c := newCPIOWriter(cw)
	for _, p := range names {
		e := all[p]
		body := e.body
		if e.hostPath != "" {
			var err error
			if body, err = os.ReadFile(e.hostPath); err != nil {
				return cw.n, fmt.Errorf("vmlab: initramfs %s: %w", p, err)
			}
		}
		if err := c.entry(strings.TrimPrefix(p, "/"), e.mode, body); err != nil {
			return cw.n, fmt.Errorf("vmlab: initramfs: %w", err)
		}
	}
	if err := c.close(); err != nil {
		return cw.n, fmt.Errorf("vmlab: initramfs: %w", err)
	}
	return cw.n, nil
}

// WriteFile writes the archive to path and returns its size.
func (r *Initramfs) WriteFile(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("vmlab: %w", err)
	}
	n, err := r.WriteTo(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("vmlab: %w", cerr)
	}
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
