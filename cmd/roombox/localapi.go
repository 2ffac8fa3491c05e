package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"roombox/control"
	"roombox/localapi"
	"strings"
	"time"
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

func clientError(c *localapi.Client, err error) error {
	if errors.Is(err, localapi.ErrDaemonNotRunning) {
		return &notRunningError{socket: c.Socket(), err: err}
	}
	return err
}

// callDaemon is what the verbs that drive the running daemon share: it parses the verb's
// flags (--state-dir) from args, checks the positional arguments with checkArgs, then dials
// the LocalAPI and calls call with a context bounded by localAPITimeout. A daemon that is not
// running is reported in the CLI's words.
func callDaemon(ctx context.Context, verb string, args []string,
	checkArgs func(fs *flag.FlagSet, pos []string) error,
	call func(ctx context.Context, c *localapi.Client, pos []string) error,
) error {
	fs := newFlagSet(verb)
	dir := stateDirFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := checkArgs(fs, pos); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, localAPITimeout)
	defer cancel()
	c := localapi.Dial(*dir)
	return clientError(c, call(ctx, c, pos))
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return callDaemon(ctx, "status", args, noArgs, func(ctx context.Context, c *localapi.Client, _ []string) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		data, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", data)
		return err
	})
}

func cmdMute(muted bool) func(context.Context, []string, io.Writer, io.Writer) error {
	verb := "unmute"
	if muted {
		verb = "mute"
	}
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return callDaemon(ctx, verb, args, optionalTarget, func(ctx context.Context, c *localapi.Client, pos []string) error {
			t := control.TargetMic
			if len(pos) == 1 {
				t = control.Target(pos[0])
			}
			return c.SetMuted(ctx, t, muted)
		})
	}
}

func cmdPress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return callDaemon(ctx, "press", args, oneButton, func(ctx context.Context, c *localapi.Client, pos []string) error {
		return c.Press(ctx, pos[0])
	})
}

// optionalTarget accepts no positional argument (the mic) or one mute target.
func optionalTarget(fs *flag.FlagSet, pos []string) error {
	switch len(pos) {
	case 0:
		return nil
	case 1:
		if _, err := control.ParseTarget(pos[0]); err != nil {
			return usageError{fs: fs, err: err}
		}
		return nil
	}
	return usageError{fs: fs, err: fmt.Errorf("%s: want at most one TARGET (mic, camera or speaker), got %d arguments", fs.Name(), len(pos))}
}

// oneButton wants exactly one positional argument, naming a known button.
func oneButton(fs *flag.FlagSet, pos []string) error {
	if len(pos) != 1 {
		return usageError{fs: fs, err: fmt.Errorf("press: want one BUTTON (%s), got %d arguments", strings.Join(control.Buttons, ", "), len(pos))}
	}
	return control.ValidButton(pos[0])
}
