package fleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"roombox/internal/atomicfile"
)

// Key file names `roombox fleet keygen` writes. The image ships fleet.pub as
// /etc/roombox/fleet.pub; fleet.key stays with the operator.
const (
	PrivateKeyFile = "fleet.key" // PKCS #8 PEM, mode 0600
	PublicKeyFile  = "fleet.pub" // PKIX PEM
)

// GenerateKeyFiles creates a fleet key pair in dir (created, mode 0700, if missing),
// refusing to overwrite an existing key.
func GenerateKeyFiles(dir string) (ed25519.PublicKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet: keygen: %w", err)
	}
	privPath, pubPath := filepath.Join(dir, PrivateKeyFile), filepath.Join(dir, PublicKeyFile)
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("fleet: keygen: %s exists; not overwriting a fleet key", p)
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("fleet: keygen: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("fleet: keygen: %w", err)
	}
	if err := atomicfile.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("fleet: keygen: %w", err)
	}
	if err := atomicfile.WriteFile(pubPath, EncodePublicKey(pub), 0o644); err != nil {
		return nil, fmt.Errorf("fleet: keygen: %w", err)
	}
	return pub, nil
}

// EncodePublicKey returns pub as PKIX PEM.
func EncodePublicKey(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an ed25519.PublicKey always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a PKIX PEM Ed25519 public key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	der, err := pemBlock(data, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("fleet: public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("fleet: public key is %T, want Ed25519", k)
	}
	return pub, nil
}

// LoadPublicKey reads a PEM public key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return pub, nil
}

// LoadPrivateKey reads a PKCS #8 PEM Ed25519 private key file.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	der, err := pemBlock(data, "PRIVATE KEY")
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("fleet: private key in %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("fleet: private key in %s is %T, want Ed25519", path, k)
	}
	return priv, nil
}

func pemBlock(data []byte, typ string) ([]byte, error) {
	b, _ := pem.Decode(data)
	switch {
	case b == nil:
		return nil, errors.New("fleet: not a PEM file")
	case b.Type != typ:
		return nil, fmt.Errorf("fleet: PEM block is %q, want %q", b.Type, typ)
	}
	return b.Bytes, nil
}
