// Command roombox is the conference-room box: `roombox run` is the daemon; the other verbs
// provision it, talk to it through its LocalAPI, or help development.
//
// Where each behaviour lives (docs/ARCHITECTURE.md has the whole map):
//   - the daemon: appliance.Run (daemon.go: mutes and buttons; room.go: staying in the room;
//     supervise.go: systemd readiness and watchdog), its state directory in appliance/store,
//     what provisioning it accepts in appliance/provision;
//   - what drives it: control (the Controller contract), localapi (the unix socket, and the
//     client the verbs here use), webui (the control page), telemetry (charts, /metrics, logs);
//   - media: hal (the board: hal/sim, hal/linux/...), media (capture, processing, encoding,
//     playback), signaling (the LiveKit room client);
//   - signed provisioning tokens: fleet.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is the build's version, set by the Makefile with
// -ldflags "-X main.version=$(git describe --always --dirty)"; a plain go build leaves "dev".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(report(err, os.Stderr))
}

// verb is one subcommand.
type verb struct {
	name, synopsis, help string
	run                  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func verbs() []verb {
	return []verb{
		{"run", "[--hal sim|linux] [--state-dir DIR] [--http ADDR] [--fleet-key FILE] [--provision-file FILE] [--pins FILE] [--sim-mic FILE.wav] [--sim-room on|SPEC]", "run the daemon", cmdRun},
		{"provision", "[--state-dir DIR] [--fleet-key FILE] PROVISIONING_TOKEN | --url WS_URL --token LIVEKIT_JWT", "give the device a signed provisioning token, or a room server and access token", cmdProvision},
		{"status", "[--state-dir DIR]", "print the daemon's status as JSON", cmdStatus},
		{"mute", "[--state-dir DIR] [mic|camera|speaker]", "mute the microphone (or turn the camera off, or the speaker)", cmdMute(true)},
		{"unmute", "[--state-dir DIR] [mic|camera|speaker]", "unmute the microphone (or the camera, or the speaker)", cmdMute(false)},
		{"audio", "[--state-dir DIR] [--echo-cancellation on|off] [--noise-suppression off|low|moderate|high|very-high] [--auto-gain on|off] [--input-gain DB] [--input-sensitivity N] [--dtx on|off]", "print the microphone's processing settings, after changing those given", cmdAudio},
		{"video", "[--state-dir DIR] [--size WxH] [--fps N]", "print the camera's capture and layers, after changing what is given", cmdVideo},
		{"press", "BUTTON [--state-dir DIR]", "press and release a button, exactly like hardware", cmdPress},
		{"fleet", "keygen [--out DIR] | sign --key FILE --url WS_URL (--livekit-token JWT | --token-endpoint URL --credential C) [--device ID] [--ttl D] [--name N] [--admin-password P] [--video-bitrate BPS] [--allow-remote-unmute] [--audio JSON] [--video JSON]", "make a fleet key and sign provisioning tokens with it", cmdFleet},
		{"version", "", "print the version this binary was built from", cmdVersion},
		{"token", "--api-key K --api-secret S --room R --identity I [--ttl D] [--name N]", "mint a LiveKit access token (development helper)", cmdToken},
	}
}

// run runs the verb named by args[0]. Its error decides the exit status (see report).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{err: errors.New("no verb given")}
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage())
		return nil
	case "--version", "-version":
		return cmdVersion(ctx, args[1:], stdout, stderr)
	}
	for _, v := range verbs() {
		if v.name == name {
			return v.run(ctx, args[1:], stdout, stderr)
		}
	}
	return usageError{err: fmt.Errorf("unknown verb %q", name)}
}

func usage() string {
	var b strings.Builder
	b.WriteString("usage: roombox VERB [flags]\n\nverbs:\n")
	for _, v := range verbs() {
		fmt.Fprintf(&b, "  %-10s %s\n", v.name, v.help)
	}
	b.WriteString("\n")
	for _, v := range verbs() {
		fmt.Fprintf(&b, "  roombox %s %s\n", v.name, v.synopsis)
	}
	fmt.Fprintf(&b, "\nThe state dir defaults to %s. Run 'roombox VERB -h' for a verb's flags.\n", defaultStateDir)
	return b.String()
}

// usageError is a command line roombox cannot make sense of: exit status 2 and usage.
type usageError struct {
	fs  *flag.FlagSet // the verb's flags; nil for the top-level usage
	err error         // nil when help was asked for (exit status 0)
}

func (e usageError) Error() string {
	if e.err == nil {
		return "help requested"
	}
	return e.err.Error()
}

func (e usageError) Unwrap() error { return e.err }

// report prints err and returns the exit status: 0 success (or help), 1 failure, 2 usage.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		if ue.err != nil {
			fmt.Fprintf(stderr, "roombox: %v\n", ue.err)
		}
		if ue.fs == nil {
			fmt.Fprint(stderr, usage())
		} else {
			ue.fs.SetOutput(stderr)
			ue.fs.Usage()
		}
		if ue.err == nil {
			return 0
		}
		return 2
	}
	fmt.Fprintf(stderr, "roombox: %v\n", err)
	return 1
}

// newFlagSet returns the flag set of verb v; errors are reported by report, not flag.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var synopsis string
	for _, v := range verbs() {
		if v.name == name {
			synopsis = v.synopsis
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: roombox %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags anywhere among args (`press mic --state-dir D` and
// `press --state-dir D mic` alike) and returns the positional arguments. After "--"
// everything is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, usageError{fs: fs}
			}
			return nil, usageError{fs: fs, err: err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noArgs refuses positional arguments for verbs that take none.
func noArgs(fs *flag.FlagSet, pos []string) error {
	if len(pos) > 0 {
		return usageError{fs: fs, err: fmt.Errorf("%s: unexpected argument %q", fs.Name(), pos[0])}
	}
	return nil
}

// cmdVersion prints the version: what a fleet operator compares with the release they
// flashed.
func cmdVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("version")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs, pos); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "roombox %s\n", version)
	return nil
}
