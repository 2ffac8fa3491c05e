package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"roombox/internal/atomicfile"
)

// Small per-device secrets in the state directory, mode 0600, created on first use.
const (
	// DeviceIDFile holds the device's id, which signed provisioning tokens name in sub.
	DeviceIDFile = "device-id"
	// SetupCodeFile holds the per-device code that guards the control page until an admin
	// password is provisioned (no default password anywhere).
	SetupCodeFile = "setup-code"
)

// DeviceID returns the device's id, creating it on first use: "rb-" and 12 random
// characters, stored in the state directory.
func (s *Store) DeviceID() (string, error) {
	return loadOrCreate(filepath.Join(s.dir, DeviceIDFile), func() string { return "rb-" + strings.ToLower(rand.Text()[:12]) })
}

// SetupCode returns the control page's setup code, creating it on first use.
func (s *Store) SetupCode() (string, error) {
	code, err := loadOrCreate(filepath.Join(s.dir, SetupCodeFile), func() string { return rand.Text()[:12] })
	if err != nil {
		return "", fmt.Errorf("store: setup code: %w", err)
	}
	return code, nil
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
		return "", fmt.Errorf("store: %w", err)
	}
	v := gen()
	if err := atomicfile.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	return v, nil
}
