package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"roombox/control"
	"roombox/localapi"
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
	return dialDaemon(ctx, *dir, func(ctx context.Context, c *localapi.Client) error { return call(ctx, c, pos) })
}

// dialDaemon calls call on the LocalAPI of the daemon of state directory dir, bounded by
// localAPITimeout, and reports a daemon that is not running in the CLI's words.
func dialDaemon(ctx context.Context, dir string, call func(ctx context.Context, c *localapi.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, localAPITimeout)
	defer cancel()
	c := localapi.Dial(dir)
	return clientError(c, call(ctx, c))
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return callDaemon(ctx, "status", args, noArgs, func(ctx context.Context, c *localapi.Client, _ []string) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		return printJSON(stdout, st)
	})
}

func printJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// cmdAudio prints the audio settings, after changing those its flags give.
func cmdAudio(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audio")
	dir := stateDirFlag(fs)
	var p control.AudioPatch
	fs.Func("echo-cancellation", "on or off", onOff(&p.EchoCancellation))
	fs.Func("noise-suppression", strings.Join(control.NoiseLevels, ", "), func(v string) error {
		p.NoiseSuppression = &v
		return nil
	})
	fs.Func("auto-gain", "on or off", onOff(&p.AutoGain))
	fs.Func("input-gain", fmt.Sprintf("dB, %d to %d", control.MinInputGainDB, control.MaxInputGainDB), func(v string) error {
		db, err := strconv.ParseFloat(v, 64)
		p.InputGainDB = &db
		return err
	})
	fs.Func("input-sensitivity", fmt.Sprintf("the quietest level sent, -dBov: 0 to %d (%d sends everything)",
		control.SensitivityOff, control.SensitivityOff), func(v string) error {
		n, err := strconv.Atoi(v)
		p.InputSensitivity = &n
		return err
	})
	fs.Func("dtx", "on or off", onOff(&p.DTX))
	return settingsVerb(ctx, fs, dir, args, stdout, &p, (*localapi.Client).Audio, (*localapi.Client).SetAudio)
}

// patch is a change of settings a verb's flags make (control.AudioPatch, VideoPatch).
type patch interface {
	Check() error
	IsZero() bool
}

// settingsVerb is the rest of a settings verb once its flags are defined on fs (dir among
// them, p filled by the others): it parses args (no positional one), checks p, then prints
// the daemon's settings, after asking it to apply p if p changes anything.
func settingsVerb[P patch, S any](ctx context.Context, fs *flag.FlagSet, dir *string, args []string, stdout io.Writer, p *P,
	get func(*localapi.Client, context.Context) (S, error), set func(*localapi.Client, context.Context, P) (S, error)) error {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs, pos); err != nil {
		return err
	}
	if err := (*p).Check(); err != nil {
		return usageError{fs: fs, err: err}
	}
	return dialDaemon(ctx, *dir, func(ctx context.Context, c *localapi.Client) error {
		var s S
		var err error
		if (*p).IsZero() {
			s, err = get(c, ctx)
		} else {
			s, err = set(c, ctx, *p)
		}
		if err != nil {
			return err
		}
		return printJSON(stdout, s)
	})
}

// cmdVideo prints the camera's capture and layers, after changing what its flags give.
func cmdVideo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("video")
	dir := stateDirFlag(fs)
	var p control.VideoPatch
	fs.Func("size", fmt.Sprintf("capture `WxH`, even, %dx%d to %dx%d", control.MinVideoSide, control.MinVideoSide,
		control.MaxVideoWidth, control.MaxVideoHeight), func(v string) error {
		w, h, err := parseSize(v)
		p.Width, p.Height = &w, &h
		return err
	})
	fs.Func("fps", fmt.Sprintf("frame `rate`, 1 to %d", control.MaxVideoFPS), func(v string) error {
		n, err := strconv.Atoi(v)
		p.FPS = &n
		return err
	})
	return settingsVerb(ctx, fs, dir, args, stdout, &p, (*localapi.Client).Video, (*localapi.Client).SetVideo)
}

// parseSize reads a picture size written WIDTHxHEIGHT.
func parseSize(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(s, "x")
	if ok {
		if w, err = strconv.Atoi(ws); err == nil {
			h, err = strconv.Atoi(hs)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("size %q: want WIDTHxHEIGHT, such as 1280x720", s)
	}
	return w, h, nil
}

// onOff is a flag value of on or off.
func onOff(dst **bool) func(string) error {
	return func(v string) error {
		switch v {
		case "on":
			*dst = new(true)
		case "off":
			*dst = new(false)
		default:
			return fmt.Errorf("%q: want on or off", v)
		}
		return nil
	}
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
