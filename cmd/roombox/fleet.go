package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"roombox/control"
	"roombox/fleet"
)

// defaultFleetKey is where an image pins its fleet key. When the file does not exist the
// device trusts the key of its first signed token (trust on first use).
const defaultFleetKey = "/etc/roombox/fleet.pub"

func fleetKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("fleet-key", defaultFleetKey, "trusted fleet public key `file`; if the default is absent, the first signed token's key is trusted")
}

// loadFleetKey reads the pinned fleet key. The default path may be absent (no key
// pinned); a path given explicitly must exist.
func loadFleetKey(path string) (ed25519.PublicKey, error) {
	if path == "" {
		return nil, nil
	}
	pub, err := fleet.LoadPublicKey(path)
	if errors.Is(err, fs.ErrNotExist) && path == defaultFleetKey {
		return nil, nil
	}
	return pub, err
}

func cmdFleet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{fs: newFlagSet("fleet"), err: errors.New("fleet: want keygen or sign")}
	}
	switch args[0] {
	case "keygen":
		return fleetKeygen(args[1:], stdout)
	case "sign":
		return fleetSign(args[1:], stdout)
	}
	return usageError{fs: newFlagSet("fleet"), err: fmt.Errorf("fleet: unknown subcommand %q (want keygen or sign)", args[0])}
}

func fleetKeygen(args []string, stdout io.Writer) error {
	fs := newFlagSet("fleet")
	out := fs.String("out", ".", "`directory` for fleet.key (mode 0600) and fleet.pub")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs, pos); err != nil {
		return err
	}
	pub, err := fleet.GenerateKeyFiles(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fleet key %s: %s/%s (keep it secret), %s/%s (install as %s in the image)\n",
		fleet.Fingerprint(pub), *out, fleet.PrivateKeyFile, *out, fleet.PublicKeyFile, defaultFleetKey)
	return nil
}

func fleetSign(args []string, stdout io.Writer) error {
	fs := newFlagSet("fleet")
	keyFile := fs.String("key", "", "fleet private key `file` (from fleet keygen)")
	url := fs.String("url", "", "room server `URL`, ws:// or wss://")
	lkToken := fs.String("livekit-token", "", "LiveKit access `token` for the room")
	endpoint := fs.String("token-endpoint", "", "`URL` the device asks for fresh access tokens (instead of --livekit-token)")
	credential := fs.String("credential", "", "device `credential` for the token endpoint (a bearer token)")
	device := fs.String("device", fleet.AnyDevice, "device `id` the token is for ("+fleet.AnyDevice+": any device)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the provisioning token can be applied")
	name := fs.String("name", "", "display `name` of the device")
	password := fs.String("admin-password", "", "control page admin `password` (stored as a bcrypt hash)")
	bitrate := fs.Int("video-bitrate", 0, "video `bits` per second (0: the device's default)")
	remoteUnmute := fs.Bool("allow-remote-unmute", false, "let the room unmute the mic without a local press")
	var audio control.AudioPatch
	fs.Func("audio", `audio settings as JSON, as POST /v1/audio takes them (e.g. '{"echo_cancellation":false}')`, checkedJSON(&audio))
	var video control.VideoPatch
	fs.Func("video", `camera capture as JSON, as POST /v1/video takes it (e.g. '{"width":1920,"height":1080,"fps":30}')`, checkedJSON(&video))
	id := fs.String("id", "", "unique token `id` (jti; default random)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs, pos); err != nil {
		return err
	}
	switch {
	case *keyFile == "":
		return usageError{fs: fs, err: errors.New("fleet sign: --key is required")}
	case *url == "":
		return usageError{fs: fs, err: errors.New("fleet sign: --url is required")}
	case *ttl <= 0:
		return usageError{fs: fs, err: fmt.Errorf("fleet sign: --ttl %v: must be positive", *ttl)}
	}
	priv, err := fleet.LoadPrivateKey(*keyFile)
	if err != nil {
		return err
	}
	if *id == "" {
		*id = strings.ToLower(rand.Text())
	}
	now := time.Now()
	c := fleet.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: *device, ID: *id, ExpiresAt: jwt.NewNumericDate(now.Add(*ttl))},
		URL:              strings.TrimSpace(*url), LiveKitToken: strings.TrimSpace(*lkToken),
		TokenEndpoint: *endpoint, Credential: *credential, Name: *name,
		Media: fleet.Media{VideoBitrate: *bitrate, AllowRemoteUnmute: *remoteUnmute, Audio: audio, Video: video},
	}
	if *password != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(*password), bcrypt.DefaultCost)
		if err != nil {
			return fmt.Errorf("fleet sign: admin password: %w", err)
		}
		c.AdminPasswordHash = string(h)
	}
	tok, err := fleet.Sign(priv, c, now)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// checkedJSON is a flag value of JSON decoded into dst, with no unknown field, that must
// pass dst's Check.
func checkedJSON[T any, P interface {
	*T
	Check() error
}](dst P) func(string) error {
	return func(v string) error {
		dec := json.NewDecoder(strings.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			return err
		}
		return dst.Check()
	}
}
