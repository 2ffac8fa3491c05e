package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
)

// The real binary refuses bad provisioning with a non-zero exit and a message naming the
// problem, and the stored provisioning stays byte-for-byte what it was.
func TestProvisionRefusesBadInput(t *testing.T) {
	bin := roomboxtest.Binary(t)
	stateDir := roomboxtest.StateDir(t)
	good := lktest.Token(t, room, deviceIdentity)
	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, "--url", "ws://127.0.0.1:7880", "--token", good)
	configPath := filepath.Join(stateDir, "config.json")
	before, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(aFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, stateDir, url, token, want string
	}{
		{"malformed token", stateDir, "ws://127.0.0.1:7880", "not.a-token", "token"},
		{"token not a JWT", stateDir, "ws://127.0.0.1:7880", "garbage", "not a JWT"},
		{"wrong url scheme", stateDir, "http://127.0.0.1:7880", good, "scheme must be ws or wss"},
		{"state dir under a file", filepath.Join(aFile, "state"), "ws://127.0.0.1:7880", good, aFile},
		{"state dir parent missing", filepath.Join(t.TempDir(), "no", "such", "dir"), "ws://127.0.0.1:7880", good, "no/such"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := roomboxtest.CLI(bin, "provision", "--state-dir", tc.stateDir, "--url", tc.url, "--token", tc.token)
			out := stdout + stderr
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("exit: %v, want non-zero; output %q", err, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("output %q does not name the problem (%q)", out, tc.want)
			}
			after, err := os.ReadFile(configPath)
			if err != nil || !bytes.Equal(before, after) {
				t.Fatalf("stored provisioning changed (err %v)", err)
			}
		})
	}
}
