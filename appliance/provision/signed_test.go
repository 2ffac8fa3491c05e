package provision_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roombox/appliance/provision"
	"roombox/appliance/store"
	"roombox/control"
	"roombox/fleet"
)

func signedToken(t *testing.T, priv ed25519.PrivateKey, id string, iat time.Time) string {
	t.Helper()
	tok, err := fleet.Sign(priv, fleet.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: fleet.AnyDevice, ID: id, ExpiresAt: jwt.NewNumericDate(iat.Add(time.Hour))},
		URL:              "wss://lk.example.com", LiveKitToken: mintToken(t, "lobby", "box", 2*time.Hour),
	}, iat)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Trust on first use pins the first key; plain provisioning afterwards keeps the pin and the
// replay memory (it must not reopen trust on first use); the memory of applied ids is bounded.
func TestSignedProvisioningTrust(t *testing.T) {
	_, a, _ := ed25519.GenerateKey(nil)
	_, b, _ := ed25519.GenerateKey(nil)
	s := openTestStore(t)
	now := time.Now()
	trust := provision.Trust{DeviceID: "rb-test"}

	c, info, err := provision.Apply(s, control.Provisioning{Signed: signedToken(t, a, "1", now)}, trust, now)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.PublicKey(c.Fleet.Key).Equal(a.Public()) || info.Room != "lobby" {
		t.Fatalf("first signed token: key %x, room %q", c.Fleet.Key, info.Room)
	}
	if _, _, err := provision.Apply(s, control.Provisioning{URL: "wss://other.example.com", Token: mintToken(t, "lobby", "box", time.Hour)}, trust, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := provision.Apply(s, control.Provisioning{Signed: signedToken(t, b, "2", now)}, trust, now); !errors.Is(err, fleet.ErrUntrusted) {
		t.Fatalf("key B after plain provisioning: %v, want untrusted (the pin survives)", err)
	}
	if _, _, err := provision.Apply(s, control.Provisioning{Signed: signedToken(t, a, "1", now)}, trust, now); !errors.Is(err, provision.ErrReplayed) {
		t.Fatalf("replay after plain provisioning: %v, want ErrReplayed", err)
	}
	for i := range 70 {
		if _, _, err := provision.Apply(s, control.Provisioning{Signed: signedToken(t, a, fmt.Sprint("n", i), now)}, trust, now); err != nil {
			t.Fatal(err)
		}
	}
	c, err = s.LoadConfig()
	if err != nil || len(c.Fleet.Applied) != 64 || c.Fleet.Applied[63] != "n69" {
		t.Fatalf("applied ids: %d, last %q (%v); want the newest 64", len(c.Fleet.Applied), c.Fleet.Applied[len(c.Fleet.Applied)-1], err)
	}
	// A token issued before the current one is refused whatever its id.
	if _, _, err := provision.Apply(s, control.Provisioning{Signed: signedToken(t, a, "old", now.Add(-time.Minute))}, trust, now); !errors.Is(err, provision.ErrOlder) {
		t.Fatalf("older token: %v, want ErrOlder", err)
	}
}

// A key pinned by the image is never replaced by trust on first use and refuses others.
func TestSignedProvisioningImageKey(t *testing.T) {
	_, a, _ := ed25519.GenerateKey(nil)
	_, b, _ := ed25519.GenerateKey(nil)
	s := openTestStore(t)
	now := time.Now()
	trust := provision.Trust{FleetKey: b.Public().(ed25519.PublicKey), DeviceID: "rb-test"}
	if _, _, err := provision.Apply(s, control.Provisioning{Signed: signedToken(t, a, "1", now)}, trust, now); !errors.Is(err, fleet.ErrUntrusted) {
		t.Fatalf("token of A on an image pinned to B: %v", err)
	}
	c, _, err := provision.Apply(s, control.Provisioning{Signed: signedToken(t, b, "1", now)}, trust, now)
	if err != nil || len(c.Fleet.Key) != 0 {
		t.Fatalf("token of B: %v; stored pin %x, want none (the image's key rules)", err, c.Fleet.Key)
	}
	if _, _, err := provision.Apply(s, control.Provisioning{Signed: "x", URL: "wss://h"}, trust, now); !errors.Is(err, provision.ErrInvalidProvisioning) {
		t.Fatalf("signed token with a url: %v", err)
	}
}

func TestApplyStoresOnlyWhatPasses(t *testing.T) {
	s := openTestStore(t)
	now := time.Now()
	if _, _, err := provision.Apply(s, control.Provisioning{URL: "http://x", Token: mintToken(t, "lobby", "box", time.Hour)}, provision.Trust{}, now); !errors.Is(err, provision.ErrInvalidProvisioning) {
		t.Fatalf("Apply with an http URL: %v", err)
	}
	if c, _ := s.LoadConfig(); c.Provisioned() {
		t.Fatal("a refused provisioning was stored")
	}
	tok := mintToken(t, "lobby", "box", time.Hour)
	stored, info, err := provision.Apply(s, control.Provisioning{URL: "wss://h", Token: tok}, provision.Trust{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if info.Room != "lobby" || info.Identity != "box" {
		t.Errorf("TokenInfo = %+v", info)
	}
	c, err := s.LoadConfig()
	if err != nil || c.URL != "wss://h" || c.Token != tok || !c.ProvisionedAt.Equal(now.UTC().Round(0)) {
		t.Errorf("stored config = %+v, %v", c, err)
	}
	if stored.Version != c.Version || stored.URL != c.URL || stored.Token != c.Token || !stored.ProvisionedAt.Equal(c.ProvisionedAt) {
		t.Errorf("Apply returned %+v, but stored %+v", stored, c)
	}
}

func openTestStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
