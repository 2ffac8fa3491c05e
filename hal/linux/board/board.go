// Package board reads facts about the board the firmware runs on: its model and its SoC
// temperature. Everything is read through an fs.FS rooted at "/" (os.DirFS("/") on a
// device, a testdata tree in tests); a fact the board does not offer is absent, never an
// error that stops the device.
package board

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ErrAbsent means the board does not offer the fact.
var ErrAbsent = errors.New("board: absent")

// modelFiles are where a model name lives, in order: the device tree (ARM boards; the
// string ends in a NUL), then the firmware's DMI product name (PCs, virtual machines).
var modelFiles = []string{
	"proc/device-tree/model",
	"sys/firmware/devicetree/base/model",
	"sys/class/dmi/id/product_name",
}

// Model returns the board's model, such as "Raspberry Pi 4 Model B Rev 1.5".
func Model(root fs.FS) (string, error) {
	for _, p := range modelFiles {
		b, err := fs.ReadFile(root, p)
		if err != nil {
			continue
		}
		if m := strings.TrimSpace(string(bytes.TrimRight(b, "\x00"))); m != "" {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w: no model in %s", ErrAbsent, strings.Join(modelFiles, ", "))
}

// preferredZones are the thermal zone types that measure the SoC or CPU package: the Pi's,
// and Intel's package sensor.
var preferredZones = []string{"cpu-thermal", "x86_pkg_temp"}

// Thermal is a hal.Thermal reading one /sys/class/thermal zone.
type Thermal struct {
	root fs.FS
	dir  string // e.g. sys/class/thermal/thermal_zone0
	kind string // the zone's type
}

// Zone describes the zone read, as "thermal_zone0 (cpu-thermal)".
func (t *Thermal) Zone() string { return fmt.Sprintf("%s (%s)", path.Base(t.dir), t.kind) }

// Celsius reads the zone's temperature (the kernel gives millidegrees).
func (t *Thermal) Celsius() (float64, error) {
	b, err := fs.ReadFile(t.root, t.dir+"/temp")
	if err != nil {
		return 0, fmt.Errorf("board: %s: %w", t.Zone(), err)
	}
	md, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("board: %s: temperature %q: %w", t.Zone(), b, err)
	}
	return float64(md) / 1000, nil
}

// FindThermal picks the zone to read: the first of preferredZones present, else the first
// zone in number order; zones whose temperature cannot be read now (some firmware zones
// fail every read) are passed over.
func FindThermal(root fs.FS) (*Thermal, error) {
	dirs, _ := fs.Glob(root, "sys/class/thermal/thermal_zone*")
	slices.SortFunc(dirs, func(a, b string) int { return zoneNumber(a) - zoneNumber(b) })
	var zones []*Thermal
	for _, d := range dirs {
		kind, _ := fs.ReadFile(root, d+"/type")
		t := &Thermal{root: root, dir: d, kind: strings.TrimSpace(string(kind))}
		if _, err := t.Celsius(); err == nil {
			zones = append(zones, t)
		}
	}
	if len(zones) == 0 {
		return nil, fmt.Errorf("%w: no readable thermal zone (%d found)", ErrAbsent, len(dirs))
	}
	for _, k := range preferredZones {
		if i := slices.IndexFunc(zones, func(t *Thermal) bool { return t.kind == k }); i >= 0 {
			return zones[i], nil
		}
	}
	return zones[0], nil
}

func zoneNumber(dir string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(path.Base(dir), "thermal_zone"))
	return n
}
