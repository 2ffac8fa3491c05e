// Package provision decides what provisioning the device accepts: the plain LiveKit URL and
// access token (read without verifying, the device holds no API secret), signed
// provisioning tokens checked against the fleet key, the device id, expiry, replay and
// order, and the token endpoint that hands out fresh access tokens.
package provision

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"

	"roombox/control"
)

// ErrInvalidProvisioning is matched (errors.Is) by every error Validate returns:
// the operator gave something unusable, as opposed to the device failing to store it.
var ErrInvalidProvisioning = control.NewInputError("provision: invalid provisioning")

// TokenInfo is what the device reads from a LiveKit access token. The token is parsed
// without verifying its signature: the device never holds the API secret; the room server
// verifies it.
type TokenInfo struct {
	Room     string
	Identity string // the JWT subject: the participant identity in the room
	Name     string // display name, if the token sets one
	Expires  time.Time
	APIKey   string // the JWT issuer
}

// notBeforeLeeway tolerates a room server clock slightly ahead of the device's.
const notBeforeLeeway = time.Minute

// Validate checks that p can take the device into a room at time now: the URL is
// a ws:// or wss:// URL with a host, and the token is a LiveKit access token (a compact JWT)
// granting roomJoin to a named room for an identity, not expired. Each problem has its own
// message; none of them echoes the token, which is a secret.
func Validate(p control.Provisioning, now time.Time) (TokenInfo, error) {
	if err := validateURL(p.URL); err != nil {
		return TokenInfo{}, err
	}
	return ParseAccessToken(p.Token, now)
}

func validateURL(raw string) error {
	bad := func(format string, args ...any) error {
		return &provisioningError{field: "url", value: raw, msg: fmt.Sprintf(format, args...)}
	}
	if raw == "" {
		return &provisioningError{field: "url", msg: "missing (want ws://HOST or wss://HOST)"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &provisioningError{field: "url", value: raw, msg: "does not parse", err: err}
	}
	switch {
	case u.Scheme != "ws" && u.Scheme != "wss":
		return bad("scheme must be ws or wss")
	case u.Host == "":
		return bad("no host")
	case u.User != nil:
		return bad("must not contain user credentials")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return bad("must not have a query or fragment")
	}
	return nil
}

// accessClaims are the claims of a LiveKit access token.
type accessClaims struct {
	jwt.RegisteredClaims
	auth.ClaimGrants
}

var unverifiedParser = jwt.NewParser()

// parseAccessToken reads a LiveKit access token without verifying it and checks it at now.
// When only the time check fails, the token's info is returned with the error.
func ParseAccessToken(raw string, now time.Time) (TokenInfo, error) {
	bad := func(format string, args ...any) error {
		return &provisioningError{field: "token", msg: fmt.Sprintf(format, args...)}
	}
	if raw == "" {
		return TokenInfo{}, bad("missing")
	}
	if strings.TrimSpace(raw) != raw {
		return TokenInfo{}, bad("has leading or trailing white space")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return TokenInfo{}, bad("not a JWT (want header.payload.signature, got %d part(s))", len(parts))
	}
	if parts[2] == "" {
		return TokenInfo{}, bad("unsigned (empty signature)")
	}
	var c accessClaims
	tok, _, err := unverifiedParser.ParseUnverified(raw, &c)
	if err != nil {
		return TokenInfo{}, &provisioningError{field: "token", msg: "malformed", err: err}
	}
	if alg := tok.Method.Alg(); alg != jwt.SigningMethodHS256.Alg() {
		return TokenInfo{}, bad("signed with %s, LiveKit access tokens use HS256", alg)
	}
	info := TokenInfo{Identity: c.Subject, Name: c.Name, APIKey: c.Issuer}
	if c.ExpiresAt != nil {
		info.Expires = c.ExpiresAt.Time
	}
	if c.Video != nil {
		info.Room = c.Video.Room
	}
	switch {
	case c.Issuer == "":
		return TokenInfo{}, bad("no issuer (iss, the API key)")
	case c.Video == nil:
		return TokenInfo{}, bad("no video grant")
	case !c.Video.RoomJoin:
		return TokenInfo{}, bad("video grant does not allow roomJoin")
	case c.Video.Room == "":
		return TokenInfo{}, bad("video grant names no room")
	case c.Subject == "":
		return TokenInfo{}, bad("no identity (sub)")
	case c.ExpiresAt == nil:
		return TokenInfo{}, bad("no expiry (exp)")
	// A well-formed token outside its validity still says which room it is for: the
	// info comes back with the error so a stored, expired token can be shown.
	case !info.Expires.After(now):
		return info, bad("expired at %s", info.Expires.UTC().Format(time.RFC3339))
	case c.NotBefore != nil && c.NotBefore.After(now.Add(notBeforeLeeway)):
		return info, bad("not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
	}
	return info, nil
}

// provisioningError is an unusable provisioning field. It matches ErrInvalidProvisioning.
type provisioningError struct {
	field string // "url" or "token"
	value string // quoted in the message; never set for the token
	msg   string
	err   error
}

func (e *provisioningError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidProvisioning.Error() + " ")
	b.WriteString(e.field)
	if e.value != "" {
		fmt.Fprintf(&b, " %q", e.value)
	}
	b.WriteString(": ")
	b.WriteString(e.msg)
	if e.err != nil {
		b.WriteString(": ")
		b.WriteString(e.err.Error())
	}
	return b.String()
}

func (e *provisioningError) Unwrap() error { return e.err }

func (e *provisioningError) Is(target error) bool { return target == ErrInvalidProvisioning }

// BadInput marks the error as the operator's, not the device's.
func (e *provisioningError) BadInput() bool { return true }
