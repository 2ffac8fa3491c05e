// Package fleet issues and verifies provisioning tokens: one string an operator pastes into
// a device's page, copies to its boot partition, or pushes from a fleet backend, that tells
// the device which room server to use and how to get room access tokens.
//
// A provisioning token is a compact JWS (a JWT) signed with Ed25519 ("EdDSA") by a fleet
// key. Its header carries the public key as a JWK so a device with no pinned key can trust
// the first key it accepts (trust on first use); a device with a pinned key accepts only
// tokens that verify with it. Replay and ordering (jti, iat) are the device's business: this
// package only parses and verifies.
package fleet

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roombox/control"
)

// AnyDevice is the subject of a token any device may accept.
const AnyDevice = "*"

// tokenType is the JWS "typ": it keeps a provisioning token from being mistaken for (or
// accepted as) any other JWT signed by the same key.
const tokenType = "roombox-provisioning+jwt"

// MaxTokenLen bounds what Verify parses; a real token is a few kilobytes.
const MaxTokenLen = 16 << 10

// Claims are what a provisioning token says.
type Claims struct {
	jwt.RegisteredClaims // sub: device id or AnyDevice; exp, iat, jti required

	// URL is the room server (ws:// or wss://).
	URL string `json:"url"`
	// LiveKitToken is a LiveKit access token for the room; or, instead, TokenEndpoint and
	// Credential: the device asks the endpoint for fresh access tokens ("negotiate").
	LiveKitToken  string `json:"livekit_token,omitempty"`
	TokenEndpoint string `json:"token_endpoint,omitempty"`
	Credential    string `json:"credential,omitempty"`
	// Name is the device's display name.
	Name string `json:"name,omitempty"`
	// AdminPasswordHash is the bcrypt hash of the control page's admin password.
	AdminPasswordHash string `json:"admin_password_hash,omitempty"`
	Media             Media  `json:"media,omitzero"`
}

// Media are the media settings a fleet may set; zero values keep the device's defaults.
type Media struct {
	VideoBitrate int `json:"video_bitrate,omitempty"` // bits per second
	// AllowRemoteUnmute lets a room's unmute request unmute the mic without a local press.
	AllowRemoteUnmute bool `json:"allow_remote_unmute,omitempty"`
	// Audio are microphone processing settings applied when the token is (the device's
	// page and LocalAPI may change them afterwards).
	Audio control.AudioPatch `json:"audio,omitzero"`
	// Video is the camera's capture, applied as Audio is.
	Video control.VideoPatch `json:"video,omitzero"`
}

// Errors Verify returns, compared with errors.Is. Each failure has its own message too.
var (
	ErrMalformed  = errors.New("fleet: malformed provisioning token")
	ErrUntrusted  = errors.New("fleet: provisioning token signed by an untrusted key")
	ErrBadSig     = errors.New("fleet: provisioning token signature does not verify")
	ErrExpired    = errors.New("fleet: provisioning token expired")
	ErrNotYet     = errors.New("fleet: provisioning token not valid yet")
	ErrBadClaims  = errors.New("fleet: provisioning token claims unusable")
	ErrWrongOwner = errors.New("fleet: provisioning token is for another device")
)

// leeway tolerates a signer's clock slightly ahead of the device's.
const leeway = time.Minute

// Fingerprint names a public key in messages and logs: SHA-256, base64url, first 16 chars.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:])[:16]
}

// Sign signs c with priv. It sets iat to now if unset and puts the public key in the header.
func Sign(priv ed25519.PrivateKey, c Claims, now time.Time) (string, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", errors.New("fleet: sign: not an Ed25519 private key")
	}
	if c.IssuedAt == nil {
		c.IssuedAt = jwt.NewNumericDate(now)
	}
	if err := c.check(); err != nil {
		return "", fmt.Errorf("fleet: sign: %w", err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["typ"] = tokenType
	tok.Header["kid"] = Fingerprint(pub)
	tok.Header["jwk"] = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(pub)}
	s, err := tok.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("fleet: sign: %w", err)
	}
	return s, nil
}

// Verify parses raw and checks it at now for the device deviceID. With trusted set, the
// token must verify with that key; with trusted nil (no key pinned yet), it must verify
// with the key in its own header, which Verify returns so the caller can pin it. None of
// the errors echoes the token or its secrets.
func Verify(raw string, trusted ed25519.PublicKey, deviceID string, now time.Time) (Claims, ed25519.PublicKey, error) {
	var c Claims
	if raw == "" {
		return c, nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if len(raw) > MaxTokenLen {
		return c, nil, fmt.Errorf("%w: %d bytes, longer than %d", ErrMalformed, len(raw), MaxTokenLen)
	}
	if strings.Count(raw, ".") != 2 {
		return c, nil, fmt.Errorf("%w: not a JWS (want header.payload.signature)", ErrMalformed)
	}
	var signer ed25519.PublicKey
	var keyErr error // ours, reported as is rather than wrapped in the library's words
	// The algorithm is checked in the key func, not with jwt.WithValidMethods, which would
	// report a wrong algorithm as a bad signature.
	parser := jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithJSONNumber())
	_, err := parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if alg := t.Method.Alg(); alg != jwt.SigningMethodEdDSA.Alg() {
			keyErr = fmt.Errorf("%w: signed with %s, want EdDSA (Ed25519)", ErrMalformed, alg)
			return nil, keyErr
		}
		signer, keyErr = signingKey(t.Header, trusted)
		return signer, keyErr
	})
	switch {
	case keyErr != nil:
		return Claims{}, nil, keyErr
	case err != nil:
		return Claims{}, nil, verifyError(err)
	}
	if err := c.check(); err != nil {
		return Claims{}, nil, err
	}
	switch {
	case !c.ExpiresAt.After(now):
		return Claims{}, nil, fmt.Errorf("%w at %s", ErrExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	case c.NotBefore != nil && c.NotBefore.After(now.Add(leeway)):
		return Claims{}, nil, fmt.Errorf("%w: not before %s", ErrNotYet, c.NotBefore.UTC().Format(time.RFC3339))
	case c.IssuedAt.After(now.Add(leeway)):
		return Claims{}, nil, fmt.Errorf("%w: issued in the future (%s)", ErrNotYet, c.IssuedAt.UTC().Format(time.RFC3339))
	case c.Subject != AnyDevice && c.Subject != deviceID:
		return Claims{}, nil, fmt.Errorf("%w: for %q, this is %q", ErrWrongOwner, c.Subject, deviceID)
	}
	return c, signer, nil
}

// verifyError turns the JWT library's errors into ours.
func verifyError(err error) error {
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		return fmt.Errorf("%w (altered, or not signed by the key it names)", ErrBadSig)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// signingKey returns the key a token with header h must verify with: trusted if set (and
// the header must name it), else the header's own.
func signingKey(h map[string]any, trusted ed25519.PublicKey) (ed25519.PublicKey, error) {
	if typ, _ := h["typ"].(string); typ != tokenType {
		return nil, fmt.Errorf("%w: type %q, want %q", ErrMalformed, typ, tokenType)
	}
	embedded, err := headerKey(h["jwk"])
	if err != nil {
		return nil, err
	}
	if trusted != nil && !embedded.Equal(trusted) {
		return nil, fmt.Errorf("%w: signed by fleet key %s, this device trusts %s", ErrUntrusted, Fingerprint(embedded), Fingerprint(trusted))
	}
	return embedded, nil
}

// headerKey reads the Ed25519 public key from a JWK header value.
func headerKey(v any) (ed25519.PublicKey, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: no signing key (jwk) in the header", ErrMalformed)
	}
	kty, _ := m["kty"].(string)
	crv, _ := m["crv"].(string)
	x, _ := m["x"].(string)
	if kty != "OKP" || crv != "Ed25519" {
		return nil, fmt.Errorf("%w: header key is %s/%s, want OKP/Ed25519", ErrMalformed, kty, crv)
	}
	b, err := base64.RawURLEncoding.DecodeString(x)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: header key is not a %d-byte Ed25519 key", ErrMalformed, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// check reports claims a device could not use.
func (c Claims) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadClaims, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Subject == "":
		return bad("no device (sub; %q for any device)", AnyDevice)
	case c.ID == "":
		return bad("no unique id (jti)")
	case c.ExpiresAt == nil:
		return bad("no expiry (exp)")
	case c.IssuedAt == nil:
		return bad("no issue time (iat)")
	case c.URL == "":
		return bad("no room server url")
	case (c.LiveKitToken == "") == (c.TokenEndpoint == ""):
		return bad("want exactly one of livekit_token and token_endpoint")
	case c.TokenEndpoint != "" && c.Credential == "":
		return bad("token_endpoint without a credential")
	case c.TokenEndpoint == "" && c.Credential != "":
		return bad("credential without a token_endpoint")
	case c.Media.VideoBitrate < 0:
		return bad("negative video bitrate")
	}
	if err := c.Media.Audio.Check(); err != nil {
		return bad("media: %v", err)
	}
	if err := c.Media.Video.Check(); err != nil {
		return bad("media: %v", err)
	}
	if c.TokenEndpoint != "" {
		u, err := url.Parse(c.TokenEndpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return bad("token_endpoint %q is not an http(s) URL", c.TokenEndpoint)
		}
	}
	return nil
}
