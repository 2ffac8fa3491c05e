// Package brcheck validates the BR2_EXTERNAL tree in buildroot/ without
// buildroot: every file it references exists (and scripts are executable),
// package variables follow buildroot's naming rules, users tables parse, and
// every BR2_ symbol its defconfigs and Config.in files use is declared by the
// pinned buildroot release (buildroot.txt) or by the tree's own Config.in.
package brcheck

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with the tree, at a file (relative to the tree)
// and line (0: the whole file).
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return p.File + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// Suffixes buildroot's package infrastructures (generic and golang; buildroot's
// manual, "Adding new packages") give meaning to after the package's prefix.
// A variable with any other suffix is a typo buildroot would silently ignore.
var knownSuffixes = setOf(
	"VERSION", "SITE", "SITE_METHOD", "SOURCE", "PATCH", "EXTRA_DOWNLOADS", "DL_OPTS",
	"STRIP_COMPONENTS", "EXCLUDES", "SUBDIR", "ACTUAL_SOURCE_TARBALL", "ACTUAL_SOURCE_SITE",
	"GIT_SUBMODULES", "GIT_LFS", "SVN_EXTERNALS", "OVERRIDE_SRCDIR", "OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS",
	"LICENSE", "LICENSE_FILES", "REDISTRIBUTE", "CPE_ID_VENDOR", "CPE_ID_PRODUCT", "CPE_ID_VERSION",
	"CPE_ID_UPDATE", "CPE_ID_PREFIX", "CPE_ID_VALID", "IGNORE_CVES",
	"DEPENDENCIES", "PATCH_DEPENDENCIES", "EXTRACT_DEPENDENCIES", "DOWNLOAD_DEPENDENCIES", "PROVIDES",
	"INSTALL_STAGING", "INSTALL_TARGET", "INSTALL_IMAGES", "CONFIG_SCRIPTS", "FLAT_STACKSIZE", "BIN_ARCH_EXCLUDE",
	"EXTRACT_CMDS", "CONFIGURE_CMDS", "BUILD_CMDS", "INSTALL_STAGING_CMDS", "INSTALL_TARGET_CMDS",
	"INSTALL_IMAGES_CMDS", "INSTALL_INIT_SYSV", "INSTALL_INIT_OPENRC", "INSTALL_INIT_SYSTEMD", "HELP_CMDS",
	"PERMISSIONS", "DEVICES", "USERS", "LINUX_CONFIG_FIXUPS", "BUSYBOX_CONFIG_FIXUPS",
	// golang-package
	"GOMOD", "LDFLAGS", "EXTLDFLAGS", "TAGS", "BUILD_TARGETS", "BIN_NAME", "GO_ENV",
)

var hookRe = regexp.MustCompile(`^(PRE|POST)_(DOWNLOAD|EXTRACT|RSYNC|PATCH|CONFIGURE|BUILD|INSTALL|INSTALL_STAGING|INSTALL_TARGET|INSTALL_IMAGES|LEGAL_INFO)_HOOKS$|^TARGET_FINALIZE_HOOKS$`)

// Infrastructures a package .mk may end with, as $(eval $(NAME)).
var infras = setOf("generic-package", "golang-package", "autotools-package", "cmake-package",
	"meson-package", "cargo-package", "python-package", "kconfig-package", "virtual-package")

// Defconfig options whose value names scripts, which buildroot runs and so must
// be executable, and the overlay, which must be a directory.
var scriptSymbols = setOf("BR2_ROOTFS_POST_BUILD_SCRIPT", "BR2_ROOTFS_POST_FAKEROOT_SCRIPT", "BR2_ROOTFS_POST_IMAGE_SCRIPT")

const overlaySymbol = "BR2_ROOTFS_OVERLAY"

type checker struct {
	dir      string // the br2-external tree
	name     string // from external.desc
	br       *Buildroot
	declared map[string]bool // BR2_ symbols the tree's Config.in files declare
	sourced  map[string]bool // Config.in files reached from the top one
	problems []Problem
}

// Check validates the br2-external tree at dir against br. The tree is taken to
// live in the package's source repository: $(@D)/FILE in a package .mk names
// FILE relative to dir's parent.
func Check(dir string, br *Buildroot) []Problem {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	c := &checker{dir: dir, br: br, declared: map[string]bool{}, sourced: map[string]bool{}}
	c.externalDesc()
	if c.name == "" {
		return c.problems
	}
	c.configIn("Config.in", 0, "")
	c.externalMk()
	c.packages()
	c.defconfigs()
	c.scripts()
	sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].File < c.problems[j].File })
	return c.problems
}

func (c *checker) addf(file string, line int, format string, a ...any) {
	c.problems = append(c.problems, Problem{file, line, fmt.Sprintf(format, a...)})
}

func (c *checker) externalDesc() {
	lines, err := c.lines("external.desc")
	if err != nil {
		c.addf("external.desc", 0, "%v", err)
		return
	}
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l.text, "name:"); ok {
			c.name = strings.TrimSpace(v)
			if !regexp.MustCompile(`^[A-Za-z0-9_]+$`).MatchString(c.name) {
				c.addf("external.desc", l.n, "name %q: only letters, digits and _ may be used", c.name)
				c.name = ""
			}
		}
	}
	if c.name == "" {
		c.addf("external.desc", 0, "no valid name: line")
	}
}

// expand resolves the tree's path variable, in Kconfig ($X) and make ($(X))
// spelling, and reports other trees' variables, which would be unset here.
func (c *checker) expand(file string, line int, s string) string {
	for _, m := range regexp.MustCompile(`\$\(?BR2_EXTERNAL_(\w+?)_PATH\)?`).FindAllStringSubmatch(s, -1) {
		if m[1] != c.name {
			c.addf(file, line, "%s: no br2-external tree named %s here (external.desc names %s)", m[0], m[1], c.name)
		}
	}
	s = strings.ReplaceAll(s, "$(BR2_EXTERNAL_"+c.name+"_PATH)", c.dir)
	return strings.ReplaceAll(s, "$BR2_EXTERNAL_"+c.name+"_PATH", c.dir)
}

// configIn reads a Config.in file and the ones it sources; symbols used in
// dependencies are checked once all are read.
func (c *checker) configIn(rel string, fromLine int, from string) {
	if c.sourced[rel] {
		return
	}
	lines, err := c.lines(rel)
	if err != nil {
		if from == "" {
			c.addf(rel, 0, "%v", err)
		} else {
			c.addf(from, fromLine, "sources %s, which does not exist", rel)
		}
		return
	}
	c.sourced[rel] = true
	for _, l := range lines {
		if m := configRe.FindStringSubmatch(l.text); m != nil {
			c.declared[m[1]] = true
		}
		if m := sourceRe.FindStringSubmatch(l.text); m != nil {
			p := c.expand(rel, l.n, m[1])
			r, err := filepath.Rel(c.dir, p)
			if err != nil || strings.HasPrefix(r, "..") || !filepath.IsAbs(p) {
				c.addf(rel, l.n, "sources %s: not a path inside the tree ($BR2_EXTERNAL_%s_PATH/...)", m[1], c.name)
				continue
			}
			c.configIn(r, l.n, rel)
		}
	}
	if from != "" {
		return
	}
	// The top file: every symbol the tree depends on, selects or defaults
	// from must exist.
	for r := range c.sourced {
		lines, _ := c.lines(r)
		for _, l := range lines {
			if !dependsRe.MatchString(l.text) {
				continue
			}
			for _, s := range symbolRe.FindAllString(l.text, -1) {
				if !c.known(s) {
					c.addf(r, l.n, "%s is declared neither by buildroot %s nor by this tree", s, c.br.Version)
				}
			}
		}
	}
}

func (c *checker) known(sym string) bool { return c.br.Symbols[sym] || c.declared[sym] }

var wildcardRe = regexp.MustCompile(`\$\(wildcard\s+([^)]+)\)`)

// externalMk checks that its includes find the packages' .mk files.
func (c *checker) externalMk() {
	lines, err := c.lines("external.mk")
	if err != nil {
		c.addf("external.mk", 0, "%v", err)
		return
	}
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l.text, "include ")
		if !ok {
			continue
		}
		pattern := c.expand("external.mk", l.n, rest)
		if m := wildcardRe.FindStringSubmatch(pattern); m != nil {
			pattern = m[1]
		}
		matches, _ := filepath.Glob(strings.TrimSpace(pattern))
		if len(matches) == 0 {
			c.addf("external.mk", l.n, "include %s finds no file", strings.TrimSpace(rest))
		}
	}
}

var (
	assignRe = regexp.MustCompile(`^([A-Za-z0-9_]+)\s*(?:\+=|:=|\?=|=)`)
	defineRe = regexp.MustCompile(`^define\s+(\S+)`)
	evalRe   = regexp.MustCompile(`^\$\(eval \$\(([a-z-]+)\)\)$`)
	atDRe    = regexp.MustCompile(`\$\(@D\)/([^\s;)]+)`)
	kconfRe  = regexp.MustCompile(`^\$\(call KCONFIG_(?:ENABLE|DISABLE|SET)_OPT,\s*CONFIG_\w+\s*(?:,[^)]*)?\)$`)
)

// packages checks each package/NAME: Config.in and NAME.mk exist, the
// Config.in is sourced, and NAME.mk's variables.
func (c *checker) packages() {
	dirs, _ := filepath.Glob(filepath.Join(c.dir, "package", "*"))
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		pkg := filepath.Base(d)
		cfg := filepath.Join("package", pkg, "Config.in")
		if !c.sourced[cfg] {
			c.addf(cfg, 0, "not sourced from Config.in, so BR2_PACKAGE_%s cannot be selected", upper(pkg))
		}
		c.packageMk(pkg)
	}
}

func upper(pkg string) string { return strings.ToUpper(strings.ReplaceAll(pkg, "-", "_")) }

func (c *checker) packageMk(pkg string) {
	rel := filepath.Join("package", pkg, pkg+".mk")
	lines, err := c.lines(rel)
	if err != nil {
		c.addf(rel, 0, "%v", err)
		return
	}
	prefix := upper(pkg) + "_"
	hooks := map[string]bool{} // NAMEs added to a *_HOOKS variable
	for _, l := range lines {
		if m := assignRe.FindStringSubmatch(l.text); m != nil && strings.HasSuffix(m[1], "_HOOKS") {
			_, v, _ := strings.Cut(l.text, "=")
			for _, h := range strings.Fields(v) {
				hooks[h] = true
			}
		}
	}
	set := map[string]bool{}
	var infra string
	inDefine := ""
	for _, l := range lines {
		if inDefine != "" {
			if strings.TrimSpace(l.text) == "endef" {
				inDefine = ""
			} else {
				c.defineLine(rel, l, inDefine, prefix)
			}
			continue
		}
		name := ""
		if m := defineRe.FindStringSubmatch(l.text); m != nil {
			name, inDefine = m[1], m[1]
		} else if m := assignRe.FindStringSubmatch(l.text); m != nil {
			name = m[1]
		} else if m := evalRe.FindStringSubmatch(strings.TrimSpace(l.text)); m != nil {
			infra = m[1]
			if !infras[infra] {
				c.addf(rel, l.n, "$(eval $(%s)): not a buildroot package infrastructure", infra)
			}
		}
		if name == "" {
			continue
		}
		set[name] = true
		suffix, ok := strings.CutPrefix(name, prefix)
		switch {
		case !ok:
			c.addf(rel, l.n, "%s: package variables start with %s (the directory's name, upper case)", name, prefix)
		case knownSuffixes[suffix], hookRe.MatchString(suffix), hooks[name]:
		default:
			c.addf(rel, l.n, "%s: buildroot knows no %s_%s variable (and it is no hook)", name, strings.TrimSuffix(prefix, "_"), suffix)
		}
	}
	if infra == "" {
		c.addf(rel, 0, "no $(eval $(...-package)) line: the package is never defined")
	}
	for _, v := range []string{"VERSION", "SITE", "LICENSE"} {
		if !set[prefix+v] {
			c.addf(rel, 0, "%s%s is not set", prefix, v)
		}
	}
}

// defineLine checks the bodies buildroot parses itself: users tables and
// kernel config fixups.
func (c *checker) defineLine(rel string, l line, name, prefix string) {
	text := strings.TrimSpace(l.text)
	switch strings.TrimPrefix(name, prefix) {
	case "USERS":
		c.usersLine(rel, l.n, text)
	case "INSTALL_TARGET_CMDS", "INSTALL_STAGING_CMDS", "INSTALL_IMAGES_CMDS",
		"INSTALL_INIT_SYSV", "INSTALL_INIT_OPENRC", "INSTALL_INIT_SYSTEMD":
		// What the package installs from its source must be in the
		// repository (build outputs are under $(@D)/bin, not checked).
		for _, m := range atDRe.FindAllStringSubmatch(text, -1) {
			if strings.HasPrefix(m[1], "bin/") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(c.dir), m[1])); err != nil {
				c.addf(rel, l.n, "$(@D)/%s: no %s in the source repository", m[1], m[1])
			}
		}
	case "LINUX_CONFIG_FIXUPS":
		if text != "" && !kconfRe.MatchString(text) && !strings.HasPrefix(text, "$("+prefix) {
			c.addf(rel, l.n, "%q: fixups are $(call KCONFIG_ENABLE_OPT|KCONFIG_DISABLE_OPT|KCONFIG_SET_OPT,CONFIG_...) calls", text)
		}
	}
}

// usersLine checks one line of buildroot's makeusers syntax: username uid
// group gid password home shell groups [comment].
func (c *checker) usersLine(rel string, n int, text string) {
	if text == "" || strings.HasPrefix(text, "#") {
		return
	}
	f := strings.Fields(text)
	if len(f) < 8 {
		c.addf(rel, n, "users table line has %d fields, needs username uid group gid password home shell groups [comment]", len(f))
		return
	}
	for _, i := range []int{1, 3} {
		if _, err := strconv.Atoi(f[i]); err != nil {
			c.addf(rel, n, "users table: %s %q is not a number (-1: automatic)", map[int]string{1: "uid", 3: "gid"}[i], f[i])
		}
	}
	if f[0] == "root" || f[2] == "root" {
		c.addf(rel, n, "users table: root may not be redefined")
	}
	if f[5] == "/" {
		c.addf(rel, n, "users table: home / is not allowed (- for none)")
	}
}

// defconfigs checks each configs/*_defconfig: symbols known, paths present.
func (c *checker) defconfigs() {
	files, _ := filepath.Glob(filepath.Join(c.dir, "configs", "*_defconfig"))
	if len(files) == 0 {
		c.addf("configs", 0, "no *_defconfig")
	}
	for _, f := range files {
		rel, _ := filepath.Rel(c.dir, f)
		lines, err := c.lines(rel)
		if err != nil {
			c.addf(rel, 0, "%v", err)
			continue
		}
		for _, l := range lines {
			c.defconfigLine(rel, l)
		}
	}
}

var (
	notSetRe = regexp.MustCompile(`^# (BR2_\w+) is not set$`)
	optionRe = regexp.MustCompile(`^(BR2_\w+)=(.*)$`)
)

func (c *checker) defconfigLine(rel string, l line) {
	var sym, val string
	if m := notSetRe.FindStringSubmatch(l.text); m != nil {
		sym = m[1]
	} else if m := optionRe.FindStringSubmatch(l.text); m != nil {
		sym, val = m[1], m[2]
	} else if t := strings.TrimSpace(l.text); t == "" || strings.HasPrefix(t, "#") {
		return
	} else {
		c.addf(rel, l.n, "%q is not an option line (BR2_X=value or # BR2_X is not set)", t)
		return
	}
	if !c.known(sym) {
		c.addf(rel, l.n, "%s is declared neither by buildroot %s nor by this tree", sym, c.br.Version)
	}
	unq, err := strconv.Unquote(val)
	if err != nil {
		return // bool, int, or hex
	}
	for _, w := range strings.Fields(unq) {
		switch {
		case strings.Contains(w, "BR2_EXTERNAL_"):
			p := c.expand(rel, l.n, w)
			if !strings.HasPrefix(p, c.dir) {
				continue // another tree's variable, reported by expand
			}
			fi, err := os.Stat(p)
			switch {
			case err != nil:
				c.addf(rel, l.n, "%s: %s does not exist", sym, w)
			case scriptSymbols[sym] && fi.Mode()&0o111 == 0:
				c.addf(rel, l.n, "%s: %s is not executable", sym, w)
			case sym == overlaySymbol && !fi.IsDir():
				c.addf(rel, l.n, "%s: %s is not a directory", sym, w)
			}
		case strings.HasPrefix(w, "board/"):
			if !c.br.Files[w] {
				c.addf(rel, l.n, "%s: buildroot %s has no %s", sym, c.br.Version, w)
			}
		}
	}
}

// scripts: every shell script in the tree is executable (buildroot runs the
// post-build and post-image scripts directly).
func (c *checker) scripts() {
	_ = filepath.WalkDir(c.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sh") {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Mode()&0o111 == 0 {
			rel, _ := filepath.Rel(c.dir, p)
			c.addf(rel, 0, "not executable")
		}
		return nil
	})
}

type line struct {
	n    int
	text string
}

func (c *checker) lines(rel string) ([]line, error) {
	f, err := os.Open(filepath.Join(c.dir, rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ls []line
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		ls = append(ls, line{n, sc.Text()})
	}
	return ls, sc.Err()
}

func setOf(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}

func sortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
