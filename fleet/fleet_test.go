package fleet_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roombox/fleet"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func claims(id string) fleet.Claims {
	return fleet.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   fleet.AnyDevice,
			ID:        id,
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		URL:          "wss://lk.example.com",
		LiveKitToken: "a.b.c",
		Name:         "Room 4.12",
		Media:        fleet.Media{VideoBitrate: 600_000},
	}
}

func sign(t testing.TB, priv ed25519.PrivateKey, c fleet.Claims) string {
	t.Helper()
	tok, err := fleet.Sign(priv, c, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRoundTripAndTrustOnFirstUse(t *testing.T) {
	priv := newKey(t)
	pub := priv.Public().(ed25519.PublicKey)
	tok := sign(t, priv, claims("one"))

	// No key pinned: the token's own key verifies it and is returned for pinning.
	c, signer, err := fleet.Verify(tok, nil, "box-1", now)
	if err != nil {
		t.Fatal(err)
	}
	if !signer.Equal(pub) {
		t.Fatalf("signer %s, want %s", fleet.Fingerprint(signer), fleet.Fingerprint(pub))
	}
	if c.URL != "wss://lk.example.com" || c.LiveKitToken != "a.b.c" || c.Name != "Room 4.12" || c.ID != "one" ||
		c.Media.VideoBitrate != 600_000 || !c.IssuedAt.Equal(now) {
		t.Fatalf("claims %+v", c)
	}
	// Pinned to the same key: accepted.
	if _, _, err := fleet.Verify(tok, pub, "box-1", now); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	priv, other := newKey(t), newKey(t)
	pub := priv.Public().(ed25519.PublicKey)
	good := sign(t, priv, claims("x"))
	parts := strings.Split(good, ".")

	forDevice := claims("x")
	forDevice.Subject = "box-2"
	notBefore := claims("x")
	notBefore.NotBefore = jwt.NewNumericDate(now.Add(time.Hour))

	// A payload swapped in from another token: the signature no longer matches.
	evil := claims("x")
	evil.URL = "wss://evil.example.com"
	evilParts := strings.Split(sign(t, other, evil), ".")
	swapped := parts[0] + "." + evilParts[1] + "." + parts[2]
	// A token re-signed by another key but naming the trusted key in its header.
	spoof := parts[0] + "." + evilParts[1] + "." + evilParts[2]

	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("x"))
	hs.Header["typ"] = "roombox-provisioning+jwt"
	hsTok, _ := hs.SignedString([]byte("secret"))

	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	noTyp := b64(`{"alg":"EdDSA"}`) + "." + parts[1] + "." + parts[2]
	noJWK := b64(`{"alg":"EdDSA","typ":"roombox-provisioning+jwt"}`) + "." + parts[1] + "." + parts[2]

	for _, tc := range []struct {
		name    string
		tok     string
		trusted ed25519.PublicKey
		at      time.Time
		want    error
		msg     string
	}{
		{"another key", sign(t, other, claims("x")), pub, now, fleet.ErrUntrusted, "signed by fleet key " + fleet.Fingerprint(other.Public().(ed25519.PublicKey)) + ", this device trusts " + fleet.Fingerprint(pub)},
		{"expired", good, pub, now.Add(2 * time.Hour), fleet.ErrExpired, "expired at 2026-11-22T13:00:00Z"},
		{"not yet valid", sign(t, priv, notBefore), pub, now, fleet.ErrNotYet, "not before"},
		{"issued in the future", good, pub, now.Add(-time.Hour), fleet.ErrNotYet, "issued in the future"},
		{"other device", sign(t, priv, forDevice), pub, now, fleet.ErrWrongOwner, `for "box-2", this is "box-1"`},
		{"payload swapped", swapped, pub, now, fleet.ErrBadSig, "does not verify"},
		{"payload swapped, no key pinned", swapped, nil, now, fleet.ErrBadSig, "does not verify"},
		{"header names the trusted key, signed by another", spoof, pub, now, fleet.ErrBadSig, "does not verify"},
		{"HS256", hsTok, nil, now, fleet.ErrMalformed, "signed with HS256, want EdDSA"},
		{"no typ", noTyp, nil, now, fleet.ErrMalformed, `type "", want "roombox-provisioning+jwt"`},
		{"no jwk", noJWK, nil, now, fleet.ErrMalformed, "no signing key (jwk)"},
		{"empty", "", nil, now, fleet.ErrMalformed, "empty"},
		{"one part", "abc", nil, now, fleet.ErrMalformed, "not a JWS"},
		{"huge", strings.Repeat("a", fleet.MaxTokenLen+1), nil, now, fleet.ErrMalformed, "longer than"},
		{"a LiveKit token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", nil, now, fleet.ErrMalformed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, signer, err := fleet.Verify(tc.tok, tc.trusted, "box-1", tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %q, want it to say %q", err, tc.msg)
			}
			if signer != nil {
				t.Fatal("a refused token returned a key to pin")
			}
		})
	}
}

func TestSignRefusesUnusableClaims(t *testing.T) {
	priv := newKey(t)
	for _, tc := range []struct {
		name   string
		change func(*fleet.Claims)
		msg    string
	}{
		{"no sub", func(c *fleet.Claims) { c.Subject = "" }, "no device (sub"},
		{"no jti", func(c *fleet.Claims) { c.ID = "" }, "no unique id (jti)"},
		{"no exp", func(c *fleet.Claims) { c.ExpiresAt = nil }, "no expiry"},
		{"no url", func(c *fleet.Claims) { c.URL = "" }, "no room server url"},
		{"both token kinds", func(c *fleet.Claims) { c.TokenEndpoint, c.Credential = "https://x", "c" }, "exactly one of"},
		{"neither token kind", func(c *fleet.Claims) { c.LiveKitToken = "" }, "exactly one of"},
		{"endpoint without credential", func(c *fleet.Claims) { c.LiveKitToken, c.TokenEndpoint = "", "https://x" }, "without a credential"},
		{"endpoint not http", func(c *fleet.Claims) { c.LiveKitToken, c.TokenEndpoint, c.Credential = "", "ftp://x", "c" }, "not an http(s) URL"},
		{"negative bitrate", func(c *fleet.Claims) { c.Media.VideoBitrate = -1 }, "negative video bitrate"},
		{"audio out of range", func(c *fleet.Claims) { c.Media.Audio.InputGainDB = new(99.0) }, "media: control: bad audio setting: input_gain_db 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := claims("x")
			tc.change(&c)
			_, err := fleet.Sign(priv, c, now)
			if !errors.Is(err, fleet.ErrBadClaims) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want ErrBadClaims saying %q", err, tc.msg)
			}
		})
	}
}

func TestKeyFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "keys") // created
	pub, err := fleet.GenerateKeyFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, fleet.PrivateKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v, mode %v", err, fi.Mode())
	}
	priv, err := fleet.LoadPrivateKey(filepath.Join(dir, fleet.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := fleet.LoadPublicKey(filepath.Join(dir, fleet.PublicKeyFile))
	if err != nil || !loaded.Equal(pub) || !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("keys do not match: %v", err)
	}
	if _, err := fleet.GenerateKeyFiles(dir); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Fatalf("keygen over an existing key: %v", err)
	}
	if _, err := fleet.LoadPublicKey(filepath.Join(dir, fleet.PrivateKeyFile)); err == nil || !strings.Contains(err.Error(), `is "PRIVATE KEY", want "PUBLIC KEY"`) {
		t.Fatalf("private key read as public: %v", err)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("hello"), 0o600)
	if _, err := fleet.LoadPrivateKey(junk); err == nil || !strings.Contains(err.Error(), "not a PEM file") {
		t.Fatalf("junk key: %v", err)
	}
}

// FuzzVerify: no input panics; anything accepted verifies with the key it returns and has
// usable claims; with the fleet key pinned, only that key's tokens are accepted.
func FuzzVerify(f *testing.F) {
	priv := newKey(f)
	pub := priv.Public().(ed25519.PublicKey)
	good := sign(f, priv, claims("seed"))
	f.Add(good, true)
	f.Add(good, false)
	f.Add(good[:len(good)-3], true)
	f.Add(sign(f, newKey(f), claims("other")), true)
	f.Add("a.b.c", false)
	f.Add("", false)
	f.Add("eyJhbGciOiJFZERTQSIsInR5cCI6InJvb21ib3gtcHJvdmlzaW9uaW5nK2p3dCIsImp3ayI6eyJrdHkiOiJPS1AifX0.e30.AA", false)
	f.Fuzz(func(t *testing.T, tok string, pinned bool) {
		var trusted ed25519.PublicKey
		if pinned {
			trusted = pub
		}
		c, signer, err := fleet.Verify(tok, trusted, "box-1", now)
		if err != nil {
			if signer != nil {
				t.Fatal("refused, yet a key to pin")
			}
			return
		}
		if pinned && !signer.Equal(pub) {
			t.Fatal("accepted a token from another key while one is pinned")
		}
		if c.URL == "" || c.ID == "" || c.ExpiresAt == nil {
			t.Fatalf("accepted unusable claims %+v", c)
		}
	})
}
