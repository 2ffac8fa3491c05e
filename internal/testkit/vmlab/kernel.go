package vmlab

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// ErrNoKernel means the kernel cache holds no usable kernel; `make lab-kernel` fills it.
var ErrNoKernel = errors.New("vmlab: no lab kernel (run make lab-kernel)")

// Kernel is a Debian kernel package unpacked by `make lab-kernel`: the tree under Dir has
// boot/vmlinuz-RELEASE and lib/modules/RELEASE/kernel/... with the modules the lab loads.
// The package ships no modules.dep (its postinst runs depmod), so load order comes from each
// module's own .modinfo "depends=" field instead.
type Kernel struct {
	Release string // e.g. 6.1.0-56-amd64
	Vmlinuz string // host path of the kernel image

	modules map[string]string // module name (dashes as underscores) -> host path of its .ko
}

// OpenKernel finds the one kernel unpacked under dir and indexes its modules.
func OpenKernel(dir string) (*Kernel, error) {
	images, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return nil, fmt.Errorf("%w: %d kernel images in %s/boot, want 1", ErrNoKernel, len(images), dir)
	}
	k := &Kernel{
		Release: strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-"),
		Vmlinuz: images[0],
		modules: map[string]string{},
	}
	modDir := filepath.Join(dir, "lib", "modules", k.Release)
	err := filepath.WalkDir(modDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := strings.CutSuffix(d.Name(), ".ko"); ok && d.Type().IsRegular() {
			k.modules[moduleName(name)] = path
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	return k, nil
}

// moduleName is the kernel's name for a module: file names and modinfo use dashes and
// underscores interchangeably.
func moduleName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// LoadOrder returns the .ko paths to insmod, in order, so that the named modules load: each
// module after everything it depends on, each once.
func (k *Kernel) LoadOrder(names ...string) ([]string, error) {
	return loadOrder(names, func(name string) (string, []string, error) {
		path, ok := k.modules[name]
		if !ok {
			return "", nil, fmt.Errorf("vmlab: kernel %s: no module %s unpacked (see the lab-kernel target)", k.Release, name)
		}
		deps, err := moduleDepends(path)
		return path, deps, err
	})
}

// loadOrder sorts modules topologically; lookup gives a module's path and direct dependencies.
func loadOrder(names []string, lookup func(name string) (path string, deps []string, err error)) ([]string, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var order []string
	var visit func(name string) error
	visit = func(name string) error {
		name = moduleName(name)
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("vmlab: module dependency cycle through %s", name)
		}
		state[name] = visiting
		path, deps, err := lookup(name)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = done
		order = append(order, path)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends reads the "depends=" entry of a module's .modinfo section: a comma-separated
// list, empty for a module that needs none.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vmlab: module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("vmlab: module %s has no .modinfo", path)
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("vmlab: module %s: %w", path, err)
	}
	for field := range bytes.SplitSeq(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(field, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, fmt.Errorf("vmlab: module %s has no depends= in .modinfo", path)
}
