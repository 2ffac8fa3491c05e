package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"roombox/appliance"
	"roombox/hal/sim/acoustic"
	"runtime"
)

const defaultStateDir = "/var/lib/roombox"

// runDaemon is appliance.Run; tests replace it.
var runDaemon = appliance.Run

// defaultHal is the board a bare `roombox run` drives: the real one on ARM, else the sim.
func defaultHal(goarch string) string {
	if goarch == "arm" || goarch == "arm64" {
		return "linux"
	}
	return "sim"
}

// defaultHTTP is the control page's address: loopback on a dev machine, every interface on
// a device.
func defaultHTTP(hal string) string {
	if hal == "sim" {
		return "127.0.0.1:8080"
	}
	return ":80"
}

func stateDirFlag(fs interface {
	String(name, value, usage string) *string
}) *string {
	return fs.String("state-dir", defaultStateDir, "state `directory`: config, state and the LocalAPI socket")
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run")
	hal := fs.String("hal", defaultHal(runtime.GOARCH), "board: sim (simulated) or linux (real hardware)")
	dir := stateDirFlag(fs)
	addr := fs.String("http", "", "control page `address` (default 127.0.0.1:8080 with --hal sim, :80 otherwise)")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	keyFile := fleetKeyFlag(fs)
	pinsFile := fs.String("pins", "", "GPIO pin map `file` (YAML) for --hal linux; default the Raspberry Pi map in docs/HARDWARE.md")
	provisionFile := fs.String("provision-file", "", "provisioning token `file` (on the boot partition) applied and deleted at start")
	simMic := fs.String("sim-mic", "", "with --hal sim: a WAV `file` (48 kHz mono 16-bit) the microphone plays in a loop instead of its tone")
	simRoom := fs.String("sim-room", "", "with --hal sim: put the board in a room whose echo reaches its microphone: on, or `key=value,...` of delay, t60, reverb, coupling, clip, noise, seed")
	videoSize := fs.String("video-size", fmt.Sprintf("%dx%d", appliance.DefaultVideo.Width, appliance.DefaultVideo.Height),
		"camera capture `WxH` (even, up to 1920x1088); the layers are it, half and a quarter of it. A capture set on the device (page, LocalAPI, provisioning) wins")
	videoFPS := fs.Int("video-fps", appliance.DefaultVideo.FPS, "camera frame `rate`, 1 to 60; a rate set on the device wins")
	videoLayers := fs.Int("video-layers", appliance.DefaultVideo.Layers, "simulcast `layers` published, 1 to 3 (fewer when the camera is small)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(fs, pos); err != nil {
		return err
	}
	video := appliance.VideoOptions{FPS: *videoFPS, Layers: *videoLayers}
	if video.Width, video.Height, err = parseSize(*videoSize); err != nil {
		return usageError{fs: fs, err: fmt.Errorf("run: --video-size: %w", err)}
	}
	if err := video.Check(); err != nil {
		return usageError{fs: fs, err: fmt.Errorf("run: %w", err)}
	}
	if *hal != "sim" && *hal != "linux" {
		return usageError{fs: fs, err: fmt.Errorf("run: --hal %q: want sim or linux", *hal)}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fs: fs, err: fmt.Errorf("run: --log-level %q: want debug, info, warn or error", *level)}
	}
	if (*simMic != "" || *simRoom != "") && *hal != "sim" {
		return usageError{fs: fs, err: errors.New("run: --sim-mic and --sim-room need --hal sim")}
	}
	var room *acoustic.Config
	if *simRoom != "" {
		cfg, err := acoustic.ParseSpec(*simRoom)
		if err != nil {
			return usageError{fs: fs, err: fmt.Errorf("run: --sim-room: %w", err)}
		}
		room = &cfg
	}
	if *addr == "" {
		*addr = defaultHTTP(*hal)
	}
	key, err := loadFleetKey(*keyFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if err := noHugePages(); err != nil {
		log.Warn("transparent huge pages stay on", "err", err)
	}
	tuneGC()
	err = runDaemon(ctx, appliance.Options{Hal: *hal, StateDir: *dir, HTTPAddr: *addr, Logger: log,
		FleetKey: key, ProvisionFile: *provisionFile, PinsFile: *pinsFile, SimMic: *simMic, SimRoom: room, Video: video})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil // stopped by a signal: a clean exit
	}
	return err
}
