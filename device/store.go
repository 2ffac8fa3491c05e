package device

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"roombox/internal/atomicfile"
)

// Files in the state directory.
const (
	ConfigFile = "config.json"  // Config: provisioning, mode 0600 (holds the access token)
	StateFile  = "state.json"   // SavedState: runtime state that survives restarts
	SocketFile = "roombox.sock" // the LocalAPI unix socket, mode 0600
)

// storeVersion is the version of config.json and state.json this build reads and writes.
const storeVersion = 1

// Config is the device's provisioning as stored in config.json.
type Config struct {
	Version int    `json:"version"`
	URL     string `json:"url,omitempty"`
	// Token is a LiveKit access token; or, instead, the device fetches fresh ones from
	// TokenEndpoint with Credential.
	Token         string    `json:"token,omitempty"`
	TokenEndpoint string    `json:"token_endpoint,omitempty"`
	Credential    string    `json:"credential,omitempty"`
	ProvisionedAt time.Time `json:"provisioned_at,omitzero"`
	Name          string    `json:"name,omitempty"` // display name
	// AdminPasswordHash is the bcrypt hash of the control page's admin password, set by a
	// signed provisioning token. Empty: the page takes the device's setup code.
	AdminPasswordHash string `json:"admin_password_hash,omitempty"`
	Media             Media  `json:"media,omitzero"`
	Fleet             Fleet  `json:"fleet,omitzero"`
}

// Media are the media settings provisioning may set; zero values keep the defaults.
type Media struct {
	VideoBitrate      int  `json:"video_bitrate,omitempty"`
	AllowRemoteUnmute bool `json:"allow_remote_unmute,omitempty"`
}

// Fleet is what the device remembers of signed provisioning: the key it trusts since its
// first signed token (trust on first use, when the image pins none) and which tokens it
// applied, so a replayed or older one is refused. Plain provisioning keeps it.
type Fleet struct {
	Key      []byte    `json:"key,omitempty"` // Ed25519 public key pinned on first use
	IssuedAt time.Time `json:"issued_at,omitzero"`
	Applied  []string  `json:"applied,omitempty"` // token ids (jti), newest last, bounded
}

// Provisioned reports whether c names a room server and a way to get access tokens.
func (c Config) Provisioned() bool { return c.URL != "" && (c.Token != "" || c.TokenEndpoint != "") }

// SavedState is the runtime state kept in state.json across restarts and reboots.
type SavedState struct {
	Version      int  `json:"version"`
	MicMuted     bool `json:"mic_muted"`
	CameraOff    bool `json:"camera_off,omitempty"`
	SpeakerMuted bool `json:"speaker_muted,omitempty"`
	// Volume is the speaker volume, 0..MaxVolume; nil until someone sets it.
	Volume *int `json:"volume,omitempty"`
}

// same reports whether st and o are the same state (Volume compared by value).
func (st SavedState) same(o SavedState) bool {
	return st.MicMuted == o.MicMuted && st.CameraOff == o.CameraOff && st.SpeakerMuted == o.SpeakerMuted &&
		st.SpeakerVolume() == o.SpeakerVolume() && (st.Volume == nil) == (o.Volume == nil)
}

// DefaultVolume is the speaker volume of a device no one has set one on.
const DefaultVolume = 70

// SpeakerVolume returns the volume, or DefaultVolume if none was set.
func (st SavedState) SpeakerVolume() int {
	if st.Volume == nil {
		return DefaultVolume
	}
	return *st.Volume
}

// Store reads and writes the versioned files of a state directory. Writes are atomic
// (temporary file, fsync, rename, fsync directory). A Store is safe for concurrent use.
type Store struct {
	dir string
	mu  sync.Mutex // serializes writes, and Provision's read-modify-write
}

// OpenStore returns the store of the existing state directory dir.
func OpenStore(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("device: state dir not set")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, stateDirError(dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("device: state dir %q: not a directory", dir)
	}
	return &Store{dir: dir}, nil
}

// CreateStateDir creates the state directory dir with mode 0700 if it does not exist. Its
// parent must exist: a typo in a path is reported, not silently created.
func CreateStateDir(dir string) error {
	if dir == "" {
		return errors.New("device: state dir not set")
	}
	err := os.Mkdir(dir, 0o700)
	if err == nil || errors.Is(err, fs.ErrExist) {
		if fi, serr := os.Stat(dir); serr != nil {
			return stateDirError(dir, serr)
		} else if !fi.IsDir() {
			return fmt.Errorf("device: state dir %q: not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("device: state dir %q: parent directory %q does not exist: %w", dir, parent, fs.ErrNotExist)
	}
	return stateDirError(dir, err)
}

func stateDirError(dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is named once, by us
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("device: state dir %q does not exist: %w", dir, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("device: state dir %q: permission denied: %w", dir, err)
	}
	return fmt.Errorf("device: state dir %q: %w", dir, err)
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

// SocketPath returns the path of the LocalAPI socket in the state directory.
func (s *Store) SocketPath() string { return filepath.Join(s.dir, SocketFile) }

// LoadConfig reads config.json. A missing file is an unprovisioned device: the zero Config
// and no error.
func (s *Store) LoadConfig() (Config, error) {
	var c Config
	ok, err := s.load(ConfigFile, &c)
	if err != nil || !ok {
		return Config{}, err
	}
	return c, nil
}

// SaveConfig writes c to config.json, mode 0600, atomically.
func (s *Store) SaveConfig(c Config) error {
	c.Version = storeVersion
	return s.save(ConfigFile, c)
}

// LoadState reads state.json. A missing file is the zero SavedState (mic not muted).
func (s *Store) LoadState() (SavedState, error) {
	var st SavedState
	ok, err := s.load(StateFile, &st)
	if err != nil || !ok {
		return SavedState{}, err
	}
	return st, nil
}

// SaveState writes st to state.json atomically.
func (s *Store) SaveState(st SavedState) error {
	st.Version = storeVersion
	return s.save(StateFile, st)
}

// Provision validates p at now against the stored configuration and trust, and, if it is
// usable, stores the resulting configuration and returns it. On error nothing stored changes.
func (s *Store) Provision(p Provisioning, trust Trust, now time.Time) (Config, TokenInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.LoadConfig()
	if err != nil {
		return Config{}, TokenInfo{}, err
	}
	c, info, err := nextConfig(cur, p, trust, now)
	if err != nil {
		return Config{}, TokenInfo{}, err
	}
	c.Version = storeVersion
	if err := s.saveLocked(ConfigFile, c); err != nil {
		return Config{}, TokenInfo{}, err
	}
	return c, info, nil
}

// load decodes file into v. It reports false if the file does not exist.
func (s *Store) load(name string, v any) (bool, error) {
	path := filepath.Join(s.dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("device: read %s: %w", path, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return false, fmt.Errorf("device: %s: empty file, want a JSON object", path)
	}
	// Only the version first: a newer format may not decode into this build's types.
	var hdr struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &hdr); err != nil {
		return false, fmt.Errorf("device: %s: corrupt JSON: %w", path, err)
	}
	switch {
	case hdr.Version == nil:
		return false, fmt.Errorf("device: %s: no \"version\" field", path)
	case *hdr.Version != storeVersion:
		return false, fmt.Errorf("device: %s: unsupported version %d (this build reads version %d)", path, *hdr.Version, storeVersion)
	}
	// Fields this build does not know are ignored: a downgrade must not brick the device.
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("device: %s: %w", path, err)
	}
	return true, nil
}

func (s *Store) save(name string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked(name, v)
}

func (s *Store) saveLocked(name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("device: encode %s: %w", name, err)
	}
	data = append(data, '\n')
	if err := atomicfile.WriteFile(filepath.Join(s.dir, name), data, 0o600); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("device: save %s: state dir %q is not writable: %w", name, s.dir, err)
		}
		return fmt.Errorf("device: save %s: %w", name, err)
	}
	return nil
}
