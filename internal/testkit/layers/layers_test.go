// Package layers checks the module's import graph against the layering
// docs/ARCHITECTURE.md draws: hal is the standard library only; data flows hal -> media ->
// signaling, with the appliance wiring them; the simulated board is wired in one place; the
// page and the LocalAPI know the appliance only through control.Controller; and no
// production package imports a test kit. It reads `go list -json roombox/...`.
package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Imports    []string // direct, not counting tests
	Deps       []string // transitive, not counting tests
}

// graph lists the module's packages (their production imports only).
func graph(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "roombox/...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages; the check needs the whole module", len(pkgs))
	}
	return pkgs
}

// testKit: harnesses and fakes, for tests only.
func testKit(path string) bool {
	return strings.HasPrefix(path, "roombox/internal/testkit/") || strings.HasPrefix(path, "roombox/test/") ||
		strings.HasSuffix(path, "test")
}

func inModule(path string) bool { return path == "roombox" || strings.HasPrefix(path, "roombox/") }

func under(path, root string) bool { return path == root || strings.HasPrefix(path, root+"/") }

func TestHalIsStandardLibraryOnly(t *testing.T) {
	for _, dep := range graph(t)["roombox/hal"].Deps {
		if strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") || inModule(dep) {
			t.Errorf("roombox/hal depends on %s", dep)
		}
	}
}

// Data moves one way: hal -> media -> signaling; the appliance is the one that knows all.
func TestDataFlowsOneWay(t *testing.T) {
	pkgs := graph(t)
	for path, p := range pkgs {
		var forbidden []string
		switch {
		case under(path, "roombox/hal") && !testKit(path):
			forbidden = []string{"roombox/media", "roombox/signaling", "roombox/appliance", "roombox/webui", "roombox/localapi"}
		case under(path, "roombox/media") && !testKit(path):
			forbidden = []string{"roombox/signaling", "roombox/appliance"}
		case under(path, "roombox/signaling"):
			forbidden = []string{"roombox/appliance", "roombox/webui", "roombox/localapi", "roombox/control"}
		}
		for _, dep := range p.Deps {
			for _, f := range forbidden {
				if under(dep, f) {
					t.Errorf("%s depends on %s", path, dep)
				}
			}
		}
	}
}

// The simulated board is the development and test board: of the production packages only
// the appliance, which wires the board it is told to run on, imports it.
func TestSimBoardWiredInOnePlace(t *testing.T) {
	for path, p := range graph(t) {
		if testKit(path) || path == "roombox/hal/sim" || path == "roombox/appliance" {
			continue
		}
		if slices.Contains(p.Imports, "roombox/hal/sim") {
			t.Errorf("%s imports roombox/hal/sim", path)
		}
	}
}

// The page and the LocalAPI drive the device through control.Controller: nothing of the
// appliance is in their dependencies.
func TestPageAndLocalAPIKnowOnlyTheController(t *testing.T) {
	pkgs := graph(t)
	for _, path := range []string{"roombox/webui", "roombox/localapi"} {
		p, ok := pkgs[path]
		if !ok {
			t.Fatalf("no package %s", path)
		}
		if !slices.Contains(p.Deps, "roombox/control") {
			t.Errorf("%s does not depend on roombox/control", path)
		}
		for _, dep := range p.Deps {
			if under(dep, "roombox/appliance") {
				t.Errorf("%s depends on %s", path, dep)
			}
		}
	}
}

func TestNoProductionPackageImportsATestKit(t *testing.T) {
	for path, p := range graph(t) {
		if testKit(path) {
			continue
		}
		for _, dep := range p.Deps {
			if inModule(dep) && testKit(dep) {
				t.Errorf("%s depends on the test kit %s", path, dep)
			}
		}
	}
}
