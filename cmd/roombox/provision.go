package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"roombox/appliance/provision"
	"roombox/appliance/store"
	"roombox/control"
	"roombox/localapi"
	"strings"
	"time"
)

func cmdProvision(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("provision")
	dir := stateDirFlag(fs)
	url := fs.String("url", "", "room server `URL`, ws:// or wss://")
	token := fs.String("token", "", "LiveKit access `token` (JWT) naming the room and the device's identity")
	keyFile := fleetKeyFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	var p control.Provisioning
	switch {
	case len(pos) > 1:
		return usageError{fs: fs, err: fmt.Errorf("provision: want one PROVISIONING_TOKEN, got %d arguments", len(pos))}
	case len(pos) == 1 && (*url != "" || *token != ""):
		return usageError{fs: fs, err: errors.New("provision: give either a PROVISIONING_TOKEN or --url and --token, not both")}
	case len(pos) == 1:
		p.Signed = strings.TrimSpace(pos[0])
	case *url == "" && *token == "":
		return usageError{fs: fs, err: errors.New("provision: want a PROVISIONING_TOKEN, or --url and --token")}
	case *url == "":
		return usageError{fs: fs, err: errors.New("provision: --url is required")}
	case *token == "":
		return usageError{fs: fs, err: errors.New("provision: --token is required")}
	default:
		// White space is never part of a URL or a JWT; it is an artefact of pasting.
		p = control.Provisioning{URL: strings.TrimSpace(*url), Token: strings.TrimSpace(*token)}
		if _, err := provision.Validate(p, time.Now()); err != nil {
			return err
		}
	}

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = localapi.Dial(*dir).Provision(cctx, p)
	switch {
	case err == nil:
		st, serr := localapi.Dial(*dir).Status(cctx)
		if serr != nil {
			return serr
		}
		fmt.Fprintf(stdout, "provisioned through the running daemon: %s\n", describe(st.URL, st.Room, st.Identity))
		return nil
	case !errors.Is(err, localapi.ErrDaemonNotRunning):
		return err
	}
	// No daemon: store it for the next start, checked against the same trust it would use.
	trust, err := loadFleetKey(*keyFile)
	if err != nil {
		return err
	}
	if err := store.CreateStateDir(*dir); err != nil {
		return err
	}
	st, err := store.Open(*dir)
	if err != nil {
		return err
	}
	id, err := st.DeviceID()
	if err != nil {
		return err
	}
	cfg, info, err := provision.Apply(st, p, provision.Trust{FleetKey: trust, DeviceID: id}, time.Now())
	if err != nil {
		return err
	}
	if !cfg.Media.Audio.IsZero() || !cfg.Media.Video.IsZero() {
		if err := saveMedia(st, cfg.Media); err != nil {
			return fmt.Errorf("provision: stored, but not the token's audio and video settings: %w", err)
		}
	}
	fmt.Fprintf(stdout, "provisioned: %s\nstored in %s/%s; the daemon is not running and will use it when it starts\n",
		describe(cfg.URL, info.Room, info.Identity), *dir, store.ConfigFile)
	return nil
}

// saveMedia makes the token's audio and video settings the device's, in state.json, as the
// daemon does when it applies a token itself. A state.json that does not load is left to
// the daemon, which recovers it (and starts muted if it must).
func saveMedia(st *store.Store, m store.Media) error {
	saved, err := st.LoadState()
	if err != nil {
		return err
	}
	saved.Audio = saved.Audio.Merge(m.Audio)
	saved.Video = saved.Video.Merge(m.Video)
	return st.SaveState(saved)
}

func describe(url, room, identity string) string {
	if room == "" { // a token endpoint: the room is known at the first join
		return fmt.Sprintf("room server %s", url)
	}
	return fmt.Sprintf("room %q as %q on %s", room, identity, url)
}
