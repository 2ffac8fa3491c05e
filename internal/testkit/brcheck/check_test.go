package brcheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree is the repository's br2-external tree.
var tree = filepath.Join("..", "..", "..", "buildroot")

func pinned(t *testing.T) *Buildroot {
	t.Helper()
	br, err := Pinned()
	if err != nil {
		t.Fatal(err)
	}
	return br
}

// TestTree: the repository's tree passes, and the check covers what it should
// (so a passing run is not an empty one).
func TestTree(t *testing.T) {
	br := pinned(t)
	t.Logf("checked against buildroot %s (%d symbols)", br.Version, len(br.Symbols))
	for _, p := range Check(tree, br) {
		t.Error(p)
	}
	defconfigs, _ := filepath.Glob(filepath.Join(tree, "configs", "*_defconfig"))
	if len(defconfigs) != 4 {
		t.Errorf("%d defconfigs, want the Pi 4, 3, Zero 2 W and 5: %v", len(defconfigs), defconfigs)
	}
}

// TestPinned: the list holds the symbols the tree leans on, and none of the
// legacy ones buildroot keeps only to refuse.
func TestPinned(t *testing.T) {
	br := pinned(t)
	for _, s := range []string{"BR2_PACKAGE_HOST_GO_TARGET_CGO_LINKING_SUPPORTS", "BR2_PACKAGE_ALSA_LIB",
		"BR2_INIT_SYSTEMD", "BR2_ROOTFS_USERS_TABLES", "BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE"} {
		if !br.Symbols[s] {
			t.Errorf("%s missing from buildroot %s's list", s, br.Version)
		}
	}
	if br.Symbols["BR2_LEGACY"] {
		t.Error("Config.in.legacy's symbols are in the list")
	}
	if !br.Files["board/raspberrypi/post-build.sh"] {
		t.Error("board/raspberrypi/post-build.sh missing from the file list")
	}
}

// TestBroken: copies of the tree with one fault each; the checker names it.
func TestBroken(t *testing.T) {
	br := pinned(t)
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   string
	}{
		{"missing overlay", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "board/roombox/rootfs-overlay"))
		}, "BR2_ROOTFS_OVERLAY: $(BR2_EXTERNAL_ROOMBOX_PATH)/board/roombox/rootfs-overlay does not exist"},
		{"missing sourced Config.in", func(t *testing.T, dir string) {
			edit(t, dir, "Config.in", "package/roombox/Config.in", "package/roombox/Config.in.typo")
		}, "sources package/roombox/Config.in.typo, which does not exist"},
		{"script not executable", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, "board/roombox/post-image.sh"), 0o644)
		}, "BR2_ROOTFS_POST_IMAGE_SCRIPT: $(BR2_EXTERNAL_ROOMBOX_PATH)/board/roombox/post-image.sh is not executable"},
		{"missing unit", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "..", "systemd", "roombox.service"))
		}, "$(@D)/systemd/roombox.service: no systemd/roombox.service in the source repository"},
		{"buildroot file missing", func(t *testing.T, dir string) {
			edit(t, dir, "configs/roombox_rpi5_defconfig", "cmdline_5.txt", "cmdline_6.txt")
		}, "buildroot 2026.05.1 has no board/raspberrypi/cmdline_6.txt"},
		{"bad variable suffix", func(t *testing.T, dir string) {
			edit(t, dir, "package/roombox/roombox.mk", "ROOMBOX_LICENSE =", "ROOMBOX_LICENCE =")
		}, "ROOMBOX_LICENCE: buildroot knows no ROOMBOX_LICENCE variable"},
		{"bad variable prefix", func(t *testing.T, dir string) {
			edit(t, dir, "package/roombox/roombox.mk", "ROOMBOX_GOMOD =", "ROOM_BOX_GOMOD =")
		}, "ROOM_BOX_GOMOD: package variables start with ROOMBOX_"},
		{"unknown defconfig symbol", func(t *testing.T, dir string) {
			edit(t, dir, "configs/roombox_rpi4_64_defconfig", "BR2_INIT_SYSTEMD=y", "BR2_INIT_SYSTEMDD=y")
		}, "BR2_INIT_SYSTEMDD is declared neither by buildroot 2026.05.1 nor by this tree"},
		{"legacy symbol", func(t *testing.T, dir string) {
			appendTo(t, dir, "configs/roombox_rpi3_64_defconfig", "BR2_PACKAGE_PTPD2=y\n")
		}, "BR2_PACKAGE_PTPD2 is declared neither"},
		{"unknown select", func(t *testing.T, dir string) {
			edit(t, dir, "package/roombox/Config.in", "select BR2_PACKAGE_X264", "select BR2_PACKAGE_LIBX264")
		}, "BR2_PACKAGE_LIBX264 is declared neither"},
		{"other tree's path", func(t *testing.T, dir string) {
			edit(t, dir, "configs/roombox_rpi5_defconfig", "$(BR2_EXTERNAL_ROOMBOX_PATH)/board/roombox/users.txt", "$(BR2_EXTERNAL_FOO_PATH)/users.txt")
		}, "no br2-external tree named FOO here"},
		{"users table", func(t *testing.T, dir string) {
			edit(t, dir, "package/roombox/roombox.mk", "roombox -1 roombox -1 * - - video", "roombox auto roombox -1 * - - video")
		}, `users table: uid "auto" is not a number`},
		{"config fixup", func(t *testing.T, dir string) {
			edit(t, dir, "package/roombox/roombox.mk", "$(call KCONFIG_ENABLE_OPT,CONFIG_SND)", "CONFIG_SND=y")
		}, `"CONFIG_SND=y": fixups are $(call KCONFIG_ENABLE_OPT`},
		{"no eval", func(t *testing.T, dir string) {
			edit(t, dir, "package/roombox/roombox.mk", "$(eval $(golang-package))", "")
		}, "no $(eval $(...-package)) line"},
		{"external.mk finds nothing", func(t *testing.T, dir string) {
			edit(t, dir, "external.mk", "package/*/*.mk", "packages/*/*.mk")
		}, "finds no file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyTree(t)
			tc.break_(t, dir)
			ps := Check(dir, br)
			var found bool
			for _, p := range ps {
				found = found || strings.Contains(p.String(), tc.want)
			}
			if !found {
				t.Errorf("no problem containing %q; got %v", tc.want, ps)
			}
		})
	}
}

// copyTree copies the tree into SRC/buildroot of a temporary source
// repository whose systemd/ holds the files the package installs (stand-ins:
// the checker only looks for them).
func copyTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	dst := filepath.Join(src, "buildroot")
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(src, "systemd"), 0o755)
	for _, f := range []string{"roombox.service", "99-roombox.rules", "roombox.tmpfiles", "roombox.sysusers"} {
		if err := os.WriteFile(filepath.Join(src, "systemd", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ps := Check(dst, pinned(t)); len(ps) != 0 {
		t.Fatalf("the unbroken copy already fails: %v", ps)
	}
	return dst
}

func edit(t *testing.T, dir, rel, old, new string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", rel, old)
	}
	fi, _ := os.Stat(p)
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, dir, rel, s string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, rel), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
