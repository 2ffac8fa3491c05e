package board

import (
	"errors"
	"os"
	"testing"
	"testing/fstest"
)

func TestModel(t *testing.T) {
	for root, want := range map[string]string{
		"testdata/pi4": "Raspberry Pi 4 Model B Rev 1.5", // trailing NUL dropped
		"testdata/pc":  "Standard PC (i440FX + PIIX, 1996)",
	} {
		if m, err := Model(os.DirFS(root)); err != nil || m != want {
			t.Errorf("%s: Model = %q, %v; want %q", root, m, err, want)
		}
	}
	if m, err := Model(os.DirFS("testdata/none")); !errors.Is(err, ErrAbsent) {
		t.Errorf("no model: %q, %v; want ErrAbsent", m, err)
	}
	if m, err := Model(fstest.MapFS{"proc/device-tree/model": {Data: []byte("\x00")}}); !errors.Is(err, ErrAbsent) {
		t.Errorf("empty model: %q, %v; want ErrAbsent", m, err)
	}
}

func TestFindThermal(t *testing.T) {
	for _, tc := range []struct {
		root, zone string
		celsius    float64
	}{
		{"testdata/pi4", "thermal_zone1 (cpu-thermal)", 48.312}, // preferred over the first zone
		{"testdata/pc", "thermal_zone2 (x86_pkg_temp)", 61},
	} {
		th, err := FindThermal(os.DirFS(tc.root))
		if err != nil {
			t.Fatalf("%s: %v", tc.root, err)
		}
		c, err := th.Celsius()
		if th.Zone() != tc.zone || err != nil || c != tc.celsius {
			t.Errorf("%s: %s reads %v, %v; want %s reading %v", tc.root, th.Zone(), c, err, tc.zone, tc.celsius)
		}
	}
}

func TestFindThermalFallsBackToFirstReadable(t *testing.T) {
	root := fstest.MapFS{
		"sys/class/thermal/thermal_zone10/type": {Data: []byte("b\n")},
		"sys/class/thermal/thermal_zone10/temp": {Data: []byte("10000\n")},
		"sys/class/thermal/thermal_zone2/type":  {Data: []byte("a\n")},
		"sys/class/thermal/thermal_zone2/temp":  {Data: []byte("-1500\n")},
		"sys/class/thermal/thermal_zone1/type":  {Data: []byte("broken\n")},
		"sys/class/thermal/thermal_zone1/temp":  {Data: []byte("n/a\n")},
	}
	th, err := FindThermal(root)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := th.Celsius(); th.Zone() != "thermal_zone2 (a)" || c != -1.5 {
		t.Errorf("picked %s reading %v; want thermal_zone2 (a) reading -1.5", th.Zone(), c)
	}
}

func TestNoThermalIsAbsent(t *testing.T) {
	if th, err := FindThermal(os.DirFS("testdata/none")); !errors.Is(err, ErrAbsent) {
		t.Errorf("FindThermal = %v, %v; want ErrAbsent", th, err)
	}
}

func TestThermalReadErrors(t *testing.T) {
	root := fstest.MapFS{
		"sys/class/thermal/thermal_zone0/type": {Data: []byte("cpu-thermal\n")},
		"sys/class/thermal/thermal_zone0/temp": {Data: []byte("45000\n")},
	}
	th, err := FindThermal(root)
	if err != nil {
		t.Fatal(err)
	}
	root["sys/class/thermal/thermal_zone0/temp"] = &fstest.MapFile{Data: []byte("garbage")}
	if _, err := th.Celsius(); err == nil {
		t.Error("garbage temperature read without error")
	}
	delete(root, "sys/class/thermal/thermal_zone0/temp")
	if _, err := th.Celsius(); err == nil {
		t.Error("missing temperature read without error")
	}
}
