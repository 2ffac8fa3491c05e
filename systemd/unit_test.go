package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"roombox/internal/testkit/roomboxtest"
)

// maxExposure is the exposure score systemd-analyze security gives roombox.service
// (docs/BENCHMARKS.md): what keeps it above 0 is the network (no PrivateNetwork=, no
// IPAddressDeny=, AF_INET/AF_INET6/AF_NETLINK/AF_UNIX), CAP_NET_BIND_SERVICE for :80, the
// device ACL, supplementary groups, no PrivateDevices=, PrivateUsers= or RootDirectory=.
const maxExposure = 1.7

// tool returns the path of a systemd tool, failing the test with how to get it.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v): install Debian's systemd package (make systemd-deps)", name, err)
	}
	return p
}

// unitWithBinary writes roombox.service to a scratch directory with ExecStart's
// /usr/bin/roombox replaced by the binary under test (systemd-analyze verify checks that
// the command exists and is executable), and returns its path and the ExecStart line.
func unitWithBinary(t *testing.T, bin string) (path, execStart string) {
	t.Helper()
	unit, err := os.ReadFile("roombox.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=/usr/bin/roombox( .*)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("roombox.service: no ExecStart=/usr/bin/roombox line")
	}
	rewritten := strings.Replace(string(unit), "ExecStart=/usr/bin/roombox", "ExecStart="+bin, 1)
	path = filepath.Join(t.TempDir(), "roombox.service")
	if err := os.WriteFile(path, []byte(rewritten), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, string(m[1])
}

// systemd-analyze verify accepts the unit with nothing to say: an unknown key or a bad
// value is only a warning there, so any output fails the test. The flags ExecStart passes
// are ones `roombox run` has.
func TestUnitVerifies(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	bin := roomboxtest.Binary(t)
	path, args := unitWithBinary(t, bin)
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify roombox.service: %v\n%s", err, out)
	}

	fields := strings.Fields(args)
	if len(fields) == 0 || fields[0] != "run" {
		t.Fatalf("ExecStart runs %q, want roombox run", args)
	}
	help, _ := exec.Command(bin, "run", "-h").CombinedOutput()
	for _, f := range fields[1:] {
		if name, ok := strings.CutPrefix(f, "--"); ok && !strings.Contains(string(help), "\n  -"+name+" ") {
			t.Errorf("ExecStart passes %s, which roombox run -h does not list:\n%s", f, help)
		}
	}
}

// The unit's exposure score, as systemd-analyze security rates it offline, is at most
// maxExposure.
func TestUnitExposure(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	path, _ := unitWithBinary(t, roomboxtest.Binary(t))
	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for roombox\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("roombox.service exposure level: %.1f (systemd-analyze security --offline=true)", score)
	if score > maxExposure {
		t.Fatalf("exposure level %.1f > %.1f:\n%s", score, maxExposure, out)
	}
}

// systemd-sysusers creates the roombox user and the gpio group in a scratch root, and
// systemd-tmpfiles then creates the state directory owned by roombox, mode 0700.
func TestSysusersAndTmpfiles(t *testing.T) {
	sysusers, tmpfiles := tool(t, "systemd-sysusers"), tool(t, "systemd-tmpfiles")
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := filepath.Abs("roombox.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sysusers, "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	uid := entry(t, filepath.Join(root, "etc/passwd"), "roombox")[2]
	entry(t, filepath.Join(root, "etc/group"), "gpio")

	conf, err = filepath.Abs("roombox.tmpfiles")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tmpfiles, "--create", "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(root, "var/lib/roombox"))
	if err != nil {
		t.Fatal(err)
	}
	if owner := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); fi.Mode().Perm() != 0o700 || owner != uid {
		t.Fatalf("/var/lib/roombox: mode %v owner %s, want 0700 roombox (%s)", fi.Mode().Perm(), owner, uid)
	}
}

// entry returns the colon-separated fields of name's line in an /etc/passwd-style file.
func entry(t *testing.T, file, name string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Split(strings.TrimSpace(line), ":"); f[0] == name {
			return f
		}
	}
	t.Fatalf("%s: no %s", file, name)
	return nil
}
