package provision

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"

	"roombox/appliance/store"
	"roombox/control"
	"roombox/fleet"
)

// Trust is what signed provisioning is checked against besides the stored configuration.
type Trust struct {
	// FleetKey is the key the image pins (/etc/roombox/fleet.pub); nil: the key of the
	// first accepted token is pinned (trust on first use).
	FleetKey ed25519.PublicKey
	DeviceID string // a token's sub must name it, or be fleet.AnyDevice
}

// Errors for signed tokens that verify but must not be applied, compared with errors.Is.
var (
	ErrReplayed = control.NewInputError("provision: invalid provisioning: token already applied (replayed)")
	ErrOlder    = control.NewInputError("provision: invalid provisioning: token older than the current provisioning")
)

// maxApplied bounds the token ids remembered against replay; older ones are also refused
// by their issue time.
const maxApplied = 64

// nextConfig is the configuration after applying p to cur, or why p cannot be applied.
func nextConfig(cur store.Config, p control.Provisioning, trust Trust, now time.Time) (store.Config, TokenInfo, error) {
	if p.Signed == "" {
		info, err := Validate(p, now)
		if err != nil {
			return store.Config{}, TokenInfo{}, err
		}
		// Plain provisioning replaces the room settings but keeps the fleet's trust and
		// replay memory: it must not reopen trust on first use.
		return store.Config{URL: p.URL, Token: p.Token, ProvisionedAt: now.UTC(), Fleet: cur.Fleet}, info, nil
	}
	if p.URL != "" || p.Token != "" {
		return store.Config{}, TokenInfo{}, &provisioningError{field: "signed token", msg: "give either a provisioning token or a url and token, not both"}
	}
	raw := strings.TrimSpace(p.Signed) // pasted tokens pick up white space
	pinned := trust.FleetKey
	if pinned == nil && len(cur.Fleet.Key) > 0 {
		pinned = ed25519.PublicKey(cur.Fleet.Key)
	}
	claims, signer, err := fleet.Verify(raw, pinned, trust.DeviceID, now)
	if err != nil {
		return store.Config{}, TokenInfo{}, &provisioningError{field: "signed token", msg: "refused", err: err}
	}
	switch {
	case slices.Contains(cur.Fleet.Applied, claims.ID):
		return store.Config{}, TokenInfo{}, fmt.Errorf("%w: id %q", ErrReplayed, claims.ID)
	case claims.IssuedAt.Time.Before(cur.Fleet.IssuedAt):
		return store.Config{}, TokenInfo{}, fmt.Errorf("%w: issued %s, the current one %s", ErrOlder,
			claims.IssuedAt.UTC().Format(time.RFC3339), cur.Fleet.IssuedAt.UTC().Format(time.RFC3339))
	}
	next := store.Config{
		URL: claims.URL, Token: claims.LiveKitToken, TokenEndpoint: claims.TokenEndpoint, Credential: claims.Credential,
		ProvisionedAt: now.UTC(), Name: claims.Name, AdminPasswordHash: claims.AdminPasswordHash,
		Media: store.Media{VideoBitrate: claims.Media.VideoBitrate, AllowRemoteUnmute: claims.Media.AllowRemoteUnmute,
			Audio: claims.Media.Audio, Video: claims.Media.Video},
		Fleet: store.Fleet{Key: cur.Fleet.Key, IssuedAt: claims.IssuedAt.UTC(), Applied: appendBounded(cur.Fleet.Applied, claims.ID)},
	}
	if trust.FleetKey == nil && len(cur.Fleet.Key) == 0 {
		next.Fleet.Key = signer // trust on first use
	}
	if err := validateURL(next.URL); err != nil {
		return store.Config{}, TokenInfo{}, err
	}
	var info TokenInfo
	if next.Token != "" {
		if info, err = ParseAccessToken(next.Token, now); err != nil {
			return store.Config{}, TokenInfo{}, err
		}
	}
	return next, info, nil
}

func appendBounded(ids []string, id string) []string {
	ids = append(slices.Clone(ids), id)
	if len(ids) > maxApplied {
		ids = ids[len(ids)-maxApplied:]
	}
	return ids
}

// Apply checks p at now against the stored configuration and trust and, if it is usable,
// stores the configuration it makes and returns it, in one step under the store's lock. On
// error nothing stored changes.
func Apply(s *store.Store, p control.Provisioning, trust Trust, now time.Time) (store.Config, TokenInfo, error) {
	var info TokenInfo
	c, err := s.UpdateConfig(func(cur store.Config) (store.Config, error) {
		next, i, err := nextConfig(cur, p, trust, now)
		info = i
		return next, err
	})
	if err != nil {
		return store.Config{}, TokenInfo{}, err
	}
	return c, info, nil
}
