package provision_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"

	"roombox/appliance/provision"
	"roombox/control"
)

// mintToken returns a LiveKit access token for room and identity, valid for ttl from now.
func mintToken(t testing.TB, room, identity string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.NewAccessToken("devkey", "secret").
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: room}).
		SetIdentity(identity).
		SetName("Room box").
		SetValidFor(ttl).
		ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signClaims signs arbitrary claims, for tokens livekit/protocol/auth would not mint.
func signClaims(t testing.TB, method jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestValidateProvisioning(t *testing.T) {
	now := time.Now()
	good := mintToken(t, "lobby", "box-1", time.Hour)
	exp := now.Add(time.Hour).Unix()
	grant := map[string]any{"roomJoin": true, "room": "lobby"}
	hs256Header := b64(`{"alg":"HS256","typ":"JWT"}`)

	tests := []struct {
		name    string
		p       control.Provisioning
		now     time.Time
		wantErr string // substring; "" means valid
	}{
		{name: "valid wss", p: control.Provisioning{URL: "wss://lk.example.com", Token: good}},
		{name: "valid ws with port and path", p: control.Provisioning{URL: "ws://127.0.0.1:7880/lk", Token: good}},

		{name: "url missing", p: control.Provisioning{Token: good}, wantErr: `provision: invalid provisioning url: missing`},
		{name: "url http", p: control.Provisioning{URL: "http://x", Token: good}, wantErr: `provision: invalid provisioning url "http://x": scheme must be ws or wss`},
		{name: "url https", p: control.Provisioning{URL: "https://lk.example.com", Token: good}, wantErr: `scheme must be ws or wss`},
		{name: "url no scheme", p: control.Provisioning{URL: "lk.example.com:7880", Token: good}, wantErr: `scheme must be ws or wss`},
		{name: "url no host", p: control.Provisioning{URL: "wss:///path", Token: good}, wantErr: `provision: invalid provisioning url "wss:///path": no host`},
		{name: "url unparsable", p: control.Provisioning{URL: "wss://[::1", Token: good}, wantErr: `provision: invalid provisioning url "wss://[::1": does not parse`},
		{name: "url with query", p: control.Provisioning{URL: "wss://h/?a=b", Token: good}, wantErr: `must not have a query or fragment`},
		{name: "url with credentials", p: control.Provisioning{URL: "wss://u:p@h", Token: good}, wantErr: `must not contain user credentials`},

		{name: "token missing", p: control.Provisioning{URL: "wss://h"}, wantErr: `provision: invalid provisioning token: missing`},
		{name: "token one part", p: control.Provisioning{URL: "wss://h", Token: "not-a-token"}, wantErr: `provision: invalid provisioning token: not a JWT (want header.payload.signature, got 1 part(s))`},
		{name: "token two parts", p: control.Provisioning{URL: "wss://h", Token: "a.b"}, wantErr: `not a JWT`},
		{name: "token four parts", p: control.Provisioning{URL: "wss://h", Token: good + ".x"}, wantErr: `not a JWT`},
		{name: "token unsigned", p: control.Provisioning{URL: "wss://h", Token: good[:strings.LastIndex(good, ".")+1]}, wantErr: `provision: invalid provisioning token: unsigned`},
		{name: "token white space", p: control.Provisioning{URL: "wss://h", Token: good + "\n"}, wantErr: `leading or trailing white space`},
		{name: "token bad base64", p: control.Provisioning{URL: "wss://h", Token: "!!!.???.sig"}, wantErr: `provision: invalid provisioning token: malformed`},
		{name: "token claims not JSON", p: control.Provisioning{URL: "wss://h", Token: hs256Header + "." + b64("not json") + ".sig"}, wantErr: `provision: invalid provisioning token: malformed`},
		{name: "token header not JSON", p: control.Provisioning{URL: "wss://h", Token: b64("{") + "." + b64(`{}`) + ".sig"}, wantErr: `malformed`},
		{name: "token alg none", p: control.Provisioning{URL: "wss://h", Token: b64(`{"alg":"none"}`) + "." + b64(`{"sub":"x"}`) + ".sig"}, wantErr: `signed with none, LiveKit access tokens use HS256`},
		{name: "token HS512", p: control.Provisioning{URL: "wss://h", Token: signClaims(t, jwt.SigningMethodHS512, jwt.MapClaims{"iss": "k", "sub": "box", "exp": exp, "video": grant})}, wantErr: `signed with HS512, LiveKit access tokens use HS256`},
		{name: "token no issuer", p: control.Provisioning{URL: "wss://h", Token: signClaims(t, jwt.SigningMethodHS256, jwt.MapClaims{"sub": "box", "exp": exp, "video": grant})}, wantErr: `no issuer`},
		{name: "token no video grant", p: control.Provisioning{URL: "wss://h", Token: signClaims(t, jwt.SigningMethodHS256, jwt.MapClaims{"iss": "k", "sub": "box", "exp": exp})}, wantErr: `provision: invalid provisioning token: no video grant`},
		{name: "token no roomJoin", p: control.Provisioning{URL: "wss://h", Token: signClaims(t, jwt.SigningMethodHS256, jwt.MapClaims{"iss": "k", "sub": "box", "exp": exp, "video": map[string]any{"room": "lobby"}})}, wantErr: `does not allow roomJoin`},
		{name: "token no room", p: control.Provisioning{URL: "wss://h", Token: mintToken(t, "", "box", time.Hour)}, wantErr: `provision: invalid provisioning token: video grant names no room`},
		{name: "token no identity", p: control.Provisioning{URL: "wss://h", Token: mintToken(t, "lobby", "", time.Hour)}, wantErr: `provision: invalid provisioning token: no identity (sub)`},
		{name: "token no exp", p: control.Provisioning{URL: "wss://h", Token: signClaims(t, jwt.SigningMethodHS256, jwt.MapClaims{"iss": "k", "sub": "box", "video": grant})}, wantErr: `no expiry (exp)`},
		{name: "token exp not a number", p: control.Provisioning{URL: "wss://h", Token: signClaims(t, jwt.SigningMethodHS256, jwt.MapClaims{"iss": "k", "sub": "box", "exp": "soon", "video": grant})}, wantErr: `malformed`},
		{name: "token expired", p: control.Provisioning{URL: "wss://h", Token: good}, now: now.Add(2 * time.Hour), wantErr: `provision: invalid provisioning token: expired at ` + time.Unix(exp, 0).UTC().Format(time.RFC3339)[:13]},
		{name: "token not yet valid", p: control.Provisioning{URL: "wss://h", Token: good}, now: now.Add(-time.Hour), wantErr: `not valid before`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := tt.now
			if at.IsZero() {
				at = now
			}
			info, err := provision.Validate(tt.p, at)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateProvisioning: %v", err)
				}
				want := provision.TokenInfo{Room: "lobby", Identity: "box-1", Name: "Room box", APIKey: "devkey"}
				got := info
				got.Expires = time.Time{}
				if got != want {
					t.Errorf("TokenInfo = %+v, want %+v", got, want)
				}
				if d := info.Expires.Sub(now); d < 59*time.Minute || d > 61*time.Minute {
					t.Errorf("Expires = %v, want about an hour from now", info.Expires)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateProvisioning succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
			if !errors.Is(err, provision.ErrInvalidProvisioning) {
				t.Errorf("error %q does not match ErrInvalidProvisioning", err)
			}
			// Only a token that is fine but for its validity period is still described.
			timeOnly := strings.Contains(tt.wantErr, "expired at") || strings.Contains(tt.wantErr, "not valid before")
			if described := info != (provision.TokenInfo{}); described != timeOnly {
				t.Errorf("TokenInfo = %+v on error %q; want it described only for a validity-period error", info, err)
			}
			if tt.p.Token != "" && len(tt.p.Token) > 20 && strings.Contains(err.Error(), tt.p.Token) {
				t.Errorf("error echoes the token (a secret): %q", err)
			}
		})
	}
}

// An expired token is refused, but still says which room and identity it was for, so a
// device whose stored token expired can show where it is trying to go.
func TestExpiredTokenStillDescribed(t *testing.T) {
	tok := mintToken(t, "lobby", "box-1", time.Hour)
	info, err := provision.Validate(control.Provisioning{URL: "wss://h", Token: tok}, time.Now().Add(2*time.Hour))
	if err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("err = %v, want expired", err)
	}
	if info.Room != "lobby" || info.Identity != "box-1" {
		t.Fatalf("info = %+v, want room lobby, identity box-1", info)
	}
}
