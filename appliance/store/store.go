// Package store is the device's state directory: its versioned files (config.json,
// state.json), written atomically and recovered from a last good copy when corrupt, and
// the small per-device secrets beside them (device id, setup code).
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"roombox/control"
	"roombox/internal/atomicfile"
)

// Files in the state directory.
const (
	ConfigFile = "config.json" // Config: provisioning, mode 0600 (holds the access token)
	StateFile  = "state.json"  // SavedState: runtime state that survives restarts
)

// Beside each store file NAME, mode 0600 like it.
const (
	// LastGoodSuffix: NAME.last-good is the file NAME replaced by its latest save, if that
	// one decoded; a corrupt NAME is recovered from it.
	LastGoodSuffix = ".last-good"
	// CorruptSuffix: NAME.corrupt is the latest corrupt NAME, kept for inspection.
	CorruptSuffix = ".corrupt"
)

// CorruptError reports a store file that could not be decoded, and what the store did: it
// kept the file aside and restored the last good copy, or, with no usable copy, removed the
// file so the device starts from defaults. Either way the next start finds a clean file.
type CorruptError struct {
	Path  string // the corrupt file
	Err   error  // what is wrong with it
	Aside string // where it was kept; empty if it could not be
	// LastGood is why the last good copy could not be used (wrapping fs.ErrNotExist if
	// there is none); nil if it was used.
	LastGood error
	// Cleanup is a failure to move the corrupt file aside or restore the copy; the load
	// result is still right, but the next start will find the corrupt file again.
	Cleanup error
}

func (e *CorruptError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store: %s: %v (", e.Path, e.Err)
	if e.Aside != "" {
		fmt.Fprintf(&b, "kept as %s; ", e.Aside)
	}
	switch {
	case e.LastGood == nil:
		fmt.Fprintf(&b, "using the last good copy %s", e.Path+LastGoodSuffix)
	case errors.Is(e.LastGood, fs.ErrNotExist):
		b.WriteString("no last good copy: using defaults")
	default:
		fmt.Fprintf(&b, "last good copy %s unusable: %v; using defaults", e.Path+LastGoodSuffix, e.LastGood)
	}
	if e.Cleanup != nil {
		fmt.Fprintf(&b, "; %v", e.Cleanup)
	}
	b.WriteString(")")
	return b.String()
}

func (e *CorruptError) Unwrap() error { return e.Err }

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
	// Audio are the audio settings the provisioning token carried; applied once, when it
	// is (the device's own settings may change them afterwards).
	Audio control.AudioPatch `json:"audio,omitzero"`
	// Video is the camera's capture the token carried, applied as Audio is.
	Video control.VideoPatch `json:"video,omitzero"`
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
	// Audio are the audio settings made on the device or by provisioning, on top of the
	// defaults; empty until someone sets one.
	Audio control.AudioPatch `json:"audio,omitzero"`
	// Video is the camera's capture made on the device or by provisioning, on top of the
	// defaults and the run's flags; empty until someone sets it.
	Video control.VideoPatch `json:"video,omitzero"`
}

// Same reports whether st and o are the same state (Volume compared by value).
func (st SavedState) Same(o SavedState) bool {
	return st.MicMuted == o.MicMuted && st.CameraOff == o.CameraOff && st.SpeakerMuted == o.SpeakerMuted &&
		st.SpeakerVolume() == o.SpeakerVolume() && (st.Volume == nil) == (o.Volume == nil) && st.Audio.Same(o.Audio) && st.Video.Same(o.Video)
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

// SetVolume sets the volume (a fresh value: the state's copies never share it).
func (st *SavedState) SetVolume(v int) { st.Volume = &v }

// Store reads and writes the versioned files of a state directory. Writes are atomic
// (temporary file, fsync, rename, fsync directory). A Store is safe for concurrent use.
type Store struct {
	dir string
	mu  sync.Mutex // serializes writes, loads that may recover a file, and UpdateConfig's read-modify-write
}

// Open returns the store of the existing state directory dir. It removes the
// temporary files a write killed mid-way left behind: only one process at a time uses a
// store (the daemon, or the CLI when no daemon runs).
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: state dir not set")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, stateDirError(dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("store: state dir %q: not a directory", dir)
	}
	for _, name := range []string{ConfigFile, StateFile, ConfigFile + LastGoodSuffix, StateFile + LastGoodSuffix} {
		if err := atomicfile.RemoveTemps(filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("store: open store: %w", err)
		}
	}
	return &Store{dir: dir}, nil
}

// CreateStateDir creates the state directory dir with mode 0700 if it does not exist. Its
// parent must exist: a typo in a path is reported, not silently created.
func CreateStateDir(dir string) error {
	if dir == "" {
		return errors.New("store: state dir not set")
	}
	err := os.Mkdir(dir, 0o700)
	if err == nil || errors.Is(err, fs.ErrExist) {
		if fi, serr := os.Stat(dir); serr != nil {
			return stateDirError(dir, serr)
		} else if !fi.IsDir() {
			return fmt.Errorf("store: state dir %q: not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: state dir %q: parent directory %q does not exist: %w", dir, parent, fs.ErrNotExist)
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
		return fmt.Errorf("store: state dir %q does not exist: %w", dir, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("store: state dir %q: permission denied: %w", dir, err)
	}
	return fmt.Errorf("store: state dir %q: %w", dir, err)
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

// LoadConfig reads config.json. A missing file is an unprovisioned device: the zero Config
// and no error. A corrupt one gives the last good copy (or the zero Config) and a
// *CorruptError.
func (s *Store) LoadConfig() (Config, error) { return load[Config](s, ConfigFile) }

// SaveConfig writes c to config.json, mode 0600, atomically.
func (s *Store) SaveConfig(c Config) error {
	c.Version = storeVersion
	return save(s, ConfigFile, c)
}

// LoadState reads state.json. A missing file is the zero SavedState (mic not muted). A
// corrupt one gives the last good copy (or the zero SavedState) and a *CorruptError.
func (s *Store) LoadState() (SavedState, error) { return load[SavedState](s, StateFile) }

// SaveState writes st to state.json atomically.
func (s *Store) SaveState(st SavedState) error {
	st.Version = storeVersion
	return save(s, StateFile, st)
}

// UpdateConfig stores what change makes of the stored configuration, under the store's
// lock, so nothing saves between the read and the write. On error nothing stored changes.
func (s *Store) UpdateConfig(change func(cur Config) (Config, error)) (Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := loadLocked[Config](s, ConfigFile)
	if err != nil {
		return Config{}, err
	}
	c, err := change(cur)
	if err != nil {
		return Config{}, err
	}
	c.Version = storeVersion
	if err := saveLocked(s, ConfigFile, c); err != nil {
		return Config{}, err
	}
	return c, nil
}

// load reads and decodes the file name, recovering a corrupt one (see CorruptError).
func load[T any](s *Store, name string) (T, error) {
	// Held throughout: a save between reading a corrupt file and recovering it would be
	// undone by the recovery.
	s.mu.Lock()
	defer s.mu.Unlock()
	return loadLocked[T](s, name)
}

func loadLocked[T any](s *Store, name string) (T, error) {
	var zero T
	path := filepath.Join(s.dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return zero, nil
	}
	if err != nil {
		return zero, fmt.Errorf("store: read %s: %w", path, err)
	}
	v, err := decode[T](data)
	if err == nil {
		return v, nil
	}
	return recoverFile[T](path, data, err)
}

// recoverFile keeps the corrupt content of path aside, then replaces path with the last
// good copy or, if there is none, removes it. The corrupt content is written aside as a
// copy first, so a failure at any step leaves path as it was, never lost.
func recoverFile[T any](path string, corrupt []byte, cause error) (T, error) {
	ce := &CorruptError{Path: path, Err: cause}
	if err := atomicfile.WriteFile(path+CorruptSuffix, corrupt, 0o600); err != nil {
		ce.Cleanup = err
	} else {
		ce.Aside = path + CorruptSuffix
	}
	var v T
	good, err := os.ReadFile(path + LastGoodSuffix)
	if err == nil {
		v, err = decode[T](good)
	}
	ce.LastGood = err
	if ce.Cleanup != nil {
		return v, ce
	}
	if ce.LastGood == nil {
		ce.Cleanup = atomicfile.WriteFile(path, good, 0o600)
	} else if err := os.Remove(path); err != nil {
		ce.Cleanup = fmt.Errorf("remove: %w", err)
	}
	return v, ce
}

// decode checks the version of data, then decodes it into a T.
func decode[T any](data []byte) (T, error) {
	var v T
	if len(bytes.TrimSpace(data)) == 0 {
		return v, errors.New("empty file, want a JSON object")
	}
	// Only the version first: a newer format may not decode into this build's types.
	var hdr struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &hdr); err != nil {
		return v, fmt.Errorf("corrupt JSON: %w", err)
	}
	switch {
	case hdr.Version == nil:
		return v, errors.New(`no "version" field`)
	case *hdr.Version != storeVersion:
		return v, fmt.Errorf("unsupported version %d (this build reads version %d)", *hdr.Version, storeVersion)
	}
	// Fields this build does not know are ignored: a downgrade must not brick the device.
	if err := json.Unmarshal(data, &v); err != nil {
		var zero T // Unmarshal may have filled some fields
		return zero, err
	}
	return v, nil
}

// save writes v to the file name.
func save[T any](s *Store, name string, v T) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return saveLocked(s, name, v)
}

// saveLocked writes v to the file name. The file it replaces becomes the last good copy if
// it decodes: a hard link, so no data is copied, and a corrupt file never displaces a good
// copy.
func saveLocked[T any](s *Store, name string, v T) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", name, err)
	}
	data = append(data, '\n')
	path := filepath.Join(s.dir, name)
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		if _, derr := decode[T](old); derr == nil {
			err = atomicfile.Link(path, path+LastGoodSuffix)
		}
	case errors.Is(err, fs.ErrNotExist):
		err = nil
	}
	if err == nil {
		err = atomicfile.WriteFile(path, data, 0o600)
	}
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("store: save %s: state dir %q is not writable: %w", name, s.dir, err)
		}
		return fmt.Errorf("store: save %s: %w", name, err)
	}
	return nil
}
