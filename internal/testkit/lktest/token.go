package lktest

import (
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
)

// DefaultTokenTTL is the validity of tokens minted without TokenTTL.
const DefaultTokenTTL = time.Hour

// TokenOption adjusts a token minted by Token or MintToken.
type TokenOption func(*tokenOptions)

type tokenOptions struct {
	key, secret string
	ttl         time.Duration
	name        string
	metadata    string
	attributes  map[string]string
	grant       []func(*auth.VideoGrant)
}

// TokenTTL sets the token's validity (default DefaultTokenTTL). Tests of expiry and refresh
// use short ones.
func TokenTTL(d time.Duration) TokenOption { return func(o *tokenOptions) { o.ttl = d } }

// TokenName sets the participant's display name.
func TokenName(name string) TokenOption { return func(o *tokenOptions) { o.name = name } }

// TokenMetadata sets the participant's metadata.
func TokenMetadata(md string) TokenOption { return func(o *tokenOptions) { o.metadata = md } }

// TokenAttributes sets the participant's attributes.
func TokenAttributes(attrs map[string]string) TokenOption {
	return func(o *tokenOptions) { o.attributes = attrs }
}

// TokenGrant edits the video grant after the defaults (RoomJoin on the room) are set, e.g.
// to forbid publishing: TokenGrant(func(g *auth.VideoGrant) { g.SetCanPublish(false) }).
func TokenGrant(edit func(*auth.VideoGrant)) TokenOption {
	return func(o *tokenOptions) { o.grant = append(o.grant, edit) }
}

// TokenKeys signs with another key pair (default APIKey/APISecret), e.g. to test rejection.
func TokenKeys(key, secret string) TokenOption {
	return func(o *tokenOptions) { o.key, o.secret = key, secret }
}

// Token mints an access token that lets identity join room on an lktest server; it fails the
// test on error.
func Token(t testing.TB, room, identity string, opts ...TokenOption) string {
	t.Helper()
	tok, err := MintToken(room, identity, opts...)
	if err != nil {
		t.Fatalf("lktest: mint token: %v", err)
	}
	return tok
}

// MintToken is Token without a testing.TB, for use off the test goroutine.
func MintToken(room, identity string, opts ...TokenOption) (string, error) {
	o := tokenOptions{key: APIKey, secret: APISecret, ttl: DefaultTokenTTL}
	for _, opt := range opts {
		opt(&o)
	}
	grant := &auth.VideoGrant{RoomJoin: true, Room: room}
	for _, edit := range o.grant {
		edit(grant)
	}
	at := auth.NewAccessToken(o.key, o.secret).
		SetVideoGrant(grant).
		SetIdentity(identity).
		SetValidFor(o.ttl)
	if o.name != "" {
		at.SetName(o.name)
	}
	if o.metadata != "" {
		at.SetMetadata(o.metadata)
	}
	if o.attributes != nil {
		at.SetAttributes(o.attributes)
	}
	return at.ToJWT()
}

// AdminToken mints a server-API token: RoomAdmin on room (the server requires the grant's
// room to equal the request's) plus RoomList and RoomCreate.
func AdminToken(room string) (string, error) {
	return auth.NewAccessToken(APIKey, APISecret).
		SetVideoGrant(&auth.VideoGrant{RoomAdmin: true, RoomList: true, RoomCreate: true, Room: room}).
		SetValidFor(10 * time.Minute).
		ToJWT()
}
