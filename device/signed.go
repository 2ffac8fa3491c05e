package device

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"roombox/fleet"
	"roombox/internal/atomicfile"
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
	ErrReplayed = errors.New("device: provisioning token already applied (replayed)")
	ErrOlder    = errors.New("device: provisioning token older than the current provisioning")
)

// maxApplied bounds the token ids remembered against replay; older ones are also refused
// by their issue time.
const maxApplied = 64

// nextConfig is the configuration after applying p to cur, or why p cannot be applied.
func nextConfig(cur Config, p Provisioning, trust Trust, now time.Time) (Config, TokenInfo, error) {
	if p.Signed == "" {
		info, err := ValidateProvisioning(p, now)
		if err != nil {
			return Config{}, TokenInfo{}, err
		}
		// Plain provisioning replaces the room settings but keeps the fleet's trust and
		// replay memory: it must not reopen trust on first use.
		return Config{URL: p.URL, Token: p.Token, ProvisionedAt: now.UTC(), Fleet: cur.Fleet}, info, nil
	}
	if p.URL != "" || p.Token != "" {
		return Config{}, TokenInfo{}, &provisioningError{field: "signed token", msg: "give either a provisioning token or a url and token, not both"}
	}
	raw := strings.TrimSpace(p.Signed) // pasted tokens pick up white space
	pinned := trust.FleetKey
	if pinned == nil && len(cur.Fleet.Key) > 0 {
		pinned = ed25519.PublicKey(cur.Fleet.Key)
	}
	claims, signer, err := fleet.Verify(raw, pinned, trust.DeviceID, now)
	if err != nil {
		return Config{}, TokenInfo{}, &provisioningError{field: "signed token", msg: "refused", err: err}
	}
	switch {
	case slices.Contains(cur.Fleet.Applied, claims.ID):
		return Config{}, TokenInfo{}, fmt.Errorf("%w: id %q", ErrReplayed, claims.ID)
	case claims.IssuedAt.Time.Before(cur.Fleet.IssuedAt):
		return Config{}, TokenInfo{}, fmt.Errorf("%w: issued %s, the current one %s", ErrOlder,
			claims.IssuedAt.UTC().Format(time.RFC3339), cur.Fleet.IssuedAt.UTC().Format(time.RFC3339))
	}
	next := Config{
		URL: claims.URL, Token: claims.LiveKitToken, TokenEndpoint: claims.TokenEndpoint, Credential: claims.Credential,
		ProvisionedAt: now.UTC(), Name: claims.Name, AdminPasswordHash: claims.AdminPasswordHash,
		Media: Media{VideoBitrate: claims.Media.VideoBitrate, AllowRemoteUnmute: claims.Media.AllowRemoteUnmute},
		Fleet: Fleet{Key: cur.Fleet.Key, IssuedAt: claims.IssuedAt.UTC(), Applied: appendBounded(cur.Fleet.Applied, claims.ID)},
	}
	if trust.FleetKey == nil && len(cur.Fleet.Key) == 0 {
		next.Fleet.Key = signer // trust on first use
	}
	if err := validateURL(next.URL); err != nil {
		return Config{}, TokenInfo{}, err
	}
	var info TokenInfo
	if next.Token != "" {
		if info, err = parseAccessToken(next.Token, now); err != nil {
			return Config{}, TokenInfo{}, err
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

// DeviceIDFile holds the device's id, which signed provisioning tokens name in sub.
const DeviceIDFile = "device-id"

// DeviceID returns the device's id, creating it on first use: "rb-" and 12 random
// characters, stored in the state directory.
func (s *Store) DeviceID() (string, error) {
	return loadOrCreate(filepath.Join(s.dir, DeviceIDFile), func() string { return "rb-" + strings.ToLower(rand.Text()[:12]) })
}

// loadOrCreate reads a one-line secret file, creating it with gen (mode 0600) if it is
// missing or blank.
func loadOrCreate(path string, gen func() string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return v, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("device: %w", err)
	}
	v := gen()
	if err := atomicfile.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("device: %w", err)
	}
	return v, nil
}
