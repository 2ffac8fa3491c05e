package appliance_test

import (
	"context"
	"crypto/ed25519"
	"roombox/internal/testkit/lktest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"roombox/fleet"
	"roombox/internal/testkit/previewtest"
)

// TestAdminPasswordFromProvisioning: a signed provisioning token given through the page sets
// the admin password; from then on the page takes it and refuses the setup code.
func TestAdminPasswordFromProvisioning(t *testing.T) {
	base, code := runDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := previewtest.Login(ctx, base, code)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("room 4 admin"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	tok, err := fleet.Sign(key, fleet.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: fleet.AnyDevice, ID: "1", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
		// Nothing listens there: the device retries its join on this host only.
		URL: "ws://127.0.0.1:1", LiveKitToken: lktest.Token(t, "lobby", "box"),
		AdminPasswordHash: string(hash),
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Call(ctx, "POST", "/api/provision", map[string]string{"provisioning_token": tok}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := previewtest.Login(ctx, base, code); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("setup code after an admin password was provisioned: %v, want 401", err)
	}
	if _, err := previewtest.Login(ctx, base, "room 4 admin"); err != nil {
		t.Fatalf("provisioned admin password: %v", err)
	}
}
