package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"roombox/device"
)

// localAPITimeout bounds a LocalAPI call from the CLI.
const localAPITimeout = 10 * time.Second

// notRunningError is ErrDaemonNotRunning in the CLI's words.
type notRunningError struct {
	socket string
	err    error
}

func (e *notRunningError) Error() string {
	return fmt.Sprintf("daemon not running (no LocalAPI socket at %s)", e.socket)
}

func (e *notRunningError) Unwrap() error { return e.err }

func clientError(c *device.LocalClient, err error) error {
	if errors.Is(err, device.ErrDaemonNotRunning) {
		return &notRunningError{socket: c.Socket(), err: err}
	}
	return err
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status")
	dir := stateDirFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs, pos); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, localAPITimeout)
	defer cancel()
	c := device.Dial(*dir)
	st, err := c.Status(ctx)
	if err != nil {
		return clientError(c, err)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", data)
	return err
}

func cmdMute(muted bool) func(context.Context, []string, io.Writer, io.Writer) error {
	name := "unmute"
	if muted {
		name = "mute"
	}
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(name)
		dir := stateDirFlag(fs)
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if err := noArgs(fs, pos); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, localAPITimeout)
		defer cancel()
		c := device.Dial(*dir)
		return clientError(c, c.SetMicMuted(ctx, muted))
	}
}

func cmdPress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("press")
	dir := stateDirFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{fs: fs, err: fmt.Errorf("press: want one BUTTON (%s), got %d arguments", strings.Join(device.Buttons, ", "), len(pos))}
	}
	if err := device.ValidButton(pos[0]); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, localAPITimeout)
	defer cancel()
	c := device.Dial(*dir)
	return clientError(c, c.Press(ctx, pos[0]))
}
