package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"roombox/device"
)

func cmdProvision(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("provision")
	dir := stateDirFlag(fs)
	url := fs.String("url", "", "room server `URL`, ws:// or wss://")
	token := fs.String("token", "", "LiveKit access `token` (JWT) naming the room and the device's identity")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 1:
		return errors.New("provision: signed provisioning tokens are not supported yet; use --url WS_URL --token LIVEKIT_JWT")
	case len(pos) > 1:
		return usageError{fs: fs, err: fmt.Errorf("provision: unexpected arguments %q", pos)}
	case *url == "" && *token == "":
		return usageError{fs: fs, err: errors.New("provision: --url and --token are required")}
	case *url == "":
		return usageError{fs: fs, err: errors.New("provision: --url is required")}
	case *token == "":
		return usageError{fs: fs, err: errors.New("provision: --token is required")}
	}
	// White space is never part of a URL or a JWT; it is an artefact of pasting.
	p := device.Provisioning{URL: strings.TrimSpace(*url), Token: strings.TrimSpace(*token)}
	now := time.Now()
	info, err := device.ValidateProvisioning(p, now)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("room %q as %q on %s (token expires %s)", info.Room, info.Identity, p.URL, info.Expires.UTC().Format(time.RFC3339))

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = device.Dial(*dir).Provision(cctx, p)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "provisioned through the running daemon: %s\n", what)
		return nil
	case !errors.Is(err, device.ErrDaemonNotRunning):
		return err
	}
	// No daemon: store it for the next start.
	if err := device.CreateStateDir(*dir); err != nil {
		return err
	}
	store, err := device.OpenStore(*dir)
	if err != nil {
		return err
	}
	if _, _, err := store.Provision(p, now); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "provisioned: %s\nstored in %s/%s; the daemon is not running and will use it when it starts\n", what, *dir, device.ConfigFile)
	return nil
}
