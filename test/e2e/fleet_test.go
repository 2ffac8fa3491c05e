package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"roombox/control"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/roomboxtest"
	"roombox/internal/testkit/testwait"
)

// tokenEndpoint is a fleet backend's token endpoint: it answers a POST carrying the device
// credential with a fresh, short-lived LiveKit access token, and counts what it served.
func tokenEndpoint(t *testing.T, credential string) (url string, served *atomic.Int32) {
	served = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+credential {
			http.Error(w, "bad credential", http.StatusUnauthorized)
			return
		}
		tok, err := lktest.MintToken(room, deviceIdentity, lktest.TokenTTL(5*time.Minute))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"token": tok})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/token", served
}

// A signed provisioning token left on the boot partition: the daemon applies it at start,
// deletes the file, fetches access tokens from the fleet's endpoint with its credential,
// joins, and after the server is killed and back it rejoins with a fresh token.
func TestBootFileProvisioningWithTokenEndpoint(t *testing.T) {
	srv := lktest.Start(t)
	bin := roomboxtest.Binary(t)
	keys := t.TempDir()
	roomboxtest.MustCLI(t, bin, "fleet", "keygen", "--out", keys)
	endpoint, served := tokenEndpoint(t, "cred-123")
	tok := strings.TrimSpace(roomboxtest.MustCLI(t, bin, "fleet", "sign", "--key", filepath.Join(keys, "fleet.key"),
		"--url", srv.URL, "--token-endpoint", endpoint, "--credential", "cred-123", "--name", "Room 4.12"))

	boot := filepath.Join(t.TempDir(), "roombox-provision.txt")
	if err := os.WriteFile(boot, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	roomboxtest.Start(t, bin, stateDir, "--fleet-key", filepath.Join(keys, "fleet.pub"), "--provision-file", boot)
	testwait.For(t, "the device in the room", 20*time.Second, func() bool {
		return roomboxtest.StatusIs(bin, stateDir, func(st control.Status) bool { return st.State == "in-room" })
	})
	if _, err := os.Stat(boot); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the provisioning file is still there after it was applied: %v", err)
	}
	st := roomboxtest.MustStatus(t, bin, stateDir)
	if st.Room != room || st.Identity != deviceIdentity || st.Name != "Room 4.12" || st.FleetKey == "" {
		t.Fatalf("status after boot-file provisioning: %+v", st)
	}
	if _, err := srv.GetParticipant(context.Background(), room, deviceIdentity); err != nil {
		t.Fatalf("the server does not list the device: %v", err)
	}

	before := served.Load()
	srv.Kill()
	srv.Restart()
	testwait.For(t, "the device back in the room", 30*time.Second, func() bool {
		st := roomboxtest.MustStatus(t, bin, stateDir)
		return st.State == "in-room" && st.Joins == 2
	})
	if served.Load() <= before {
		t.Fatalf("the rejoin used no fresh token from the endpoint (%d served before, %d after)", before, served.Load())
	}
}

// A refused boot file is kept aside as .rejected (not retried at every boot, not lost), and
// a wrong credential leaves the device in the error state, naming the endpoint's answer.
func TestRefusedProvisioning(t *testing.T) {
	srv := lktest.Start(t)
	bin := roomboxtest.Binary(t)
	keys, otherKeys := t.TempDir(), t.TempDir()
	roomboxtest.MustCLI(t, bin, "fleet", "keygen", "--out", keys)
	roomboxtest.MustCLI(t, bin, "fleet", "keygen", "--out", otherKeys)
	endpoint, _ := tokenEndpoint(t, "cred-123")
	sign := func(key, cred string) string {
		return strings.TrimSpace(roomboxtest.MustCLI(t, bin, "fleet", "sign", "--key", filepath.Join(key, "fleet.key"),
			"--url", srv.URL, "--token-endpoint", endpoint, "--credential", cred))
	}

	boot := filepath.Join(t.TempDir(), "roombox-provision.txt")
	if err := os.WriteFile(boot, []byte(sign(otherKeys, "cred-123")), 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	d := roomboxtest.Start(t, bin, stateDir, "--fleet-key", filepath.Join(keys, "fleet.pub"), "--provision-file", boot)
	testwait.For(t, "the daemon up", 20*time.Second, func() bool {
		return roomboxtest.StatusIs(bin, stateDir, func(st control.Status) bool { return st.State == "unprovisioned" })
	})
	if _, err := os.Stat(boot + ".rejected"); err != nil {
		t.Fatalf("refused provisioning file not kept as .rejected: %v", err)
	}
	if !strings.Contains(d.LogText(), "signed by an untrusted key") {
		t.Fatalf("the log does not say why the file was refused:\n%s", d.LogText())
	}

	roomboxtest.MustCLI(t, bin, "provision", "--state-dir", stateDir, sign(keys, "wrong"))
	testwait.For(t, "the device to report the endpoint's refusal", 20*time.Second, func() bool {
		st := roomboxtest.MustStatus(t, bin, stateDir)
		return st.State == "error" && strings.Contains(st.LastError, "401")
	})
}
