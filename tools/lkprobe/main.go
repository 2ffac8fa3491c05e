// Command lkprobe is an independent LiveKit client for tests: it joins a room with LiveKit's
// own Go SDK (server-sdk-go v2.19.0), subscribes to one participant's camera (and, with
// -audio, microphone) and prints one JSON object per line on stdout:
//
//	{"event":"joined","room":"r","identity":"probe"}
//	{"event":"track","participant":"box","sid":"TR_..","kind":"video","source":"CAMERA",
//	 "mime":"video/H264","width":640,"height":360,"simulcast":false,"ssrc":123,
//	 "layers":[{"quality":"HIGH","width":640,"height":360,"ssrc":456}]}
//	{"event":"stats","sid":"TR_..","kind":"video","width":640,"height":360,"packets":90,
//	 "frames":30,"keyframes":1,"bytes":99000}                       (once a second per track)
//	{"event":"keyframe","sid":"TR_..","width":640,"height":360,"bytes":21000}
//	{"event":"pli","sid":"TR_..","n":1}
//	{"event":"keyframe",...,"pli":1,"pli_to_idr_ms":14.2,"frames_after_pli":1} (after PLI 1)
//	{"event":"error","error":"..."}, {"event":"left","reason":"..."}
//
// "track" describes the track as the server does (TrackInfo; its layers are what the
// publisher announced, their SSRCs the server's); width and height elsewhere are read from
// the SPS of the keyframes received. "pli_to_idr_ms" is the time from sending a PLI to the
// first packet of the next access unit holding an IDR; "frames_after_pli" counts the other
// frames completed in between (those in flight when the PLI left, and any the publisher sent
// before obeying it).
//
// Commands, one a line on stdin: "pli" (a PLI on every subscribed video track), "quality
// LOW|MEDIUM|HIGH" and "dimensions W H" (the layer asked of the server, for simulcast),
// "info" (the track lines again, with the server's current TrackInfo), "quit". It runs until
// "quit", SIGINT or SIGTERM, -for elapsing, or the room disconnecting it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/livekit/protocol/livekit"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lkprobe:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		url         = flag.String("url", "", "LiveKit server URL (ws://HOST:PORT)")
		token       = flag.String("token", "", "access token; or -api-key, -api-secret, -room and -identity")
		apiKey      = flag.String("api-key", "", "API key to mint a token with")
		apiSecret   = flag.String("api-secret", "", "API secret to mint a token with")
		room        = flag.String("room", "", "room to join (with -api-key)")
		identity    = flag.String("identity", "lkprobe", "the probe's identity (with -api-key)")
		participant = flag.String("participant", "", "identity whose tracks to receive (default: every participant's)")
		audio       = flag.Bool("audio", false, "receive the microphone too")
		quality     = flag.String("quality", "", "video quality to ask for at once: LOW, MEDIUM or HIGH")
		dimensions  = flag.String("dimensions", "", "video size to ask for at once, WxH")
		runFor      = flag.Duration("for", 0, "leave after this long (0: run until quit or a signal)")
		joinTimeout = flag.Duration("join-timeout", 20*time.Second, "how long joining may take")
		verbose     = flag.Bool("v", false, "the SDK's and pion's logs on stderr")
	)
	flag.Parse()
	if !*verbose { // the SDK logs every state change through the standard logger by default
		lksdk.SetLogger(protoLogger.LogRLogger(logr.Discard()))
	}
	if *url == "" || (*token == "" && (*apiKey == "" || *apiSecret == "" || *room == "")) {
		flag.Usage()
		return errors.New("need -url and -token, or -url, -api-key, -api-secret and -room")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}

	out := newOutput(os.Stdout)
	p := newProbe(out, *participant, *audio)
	defer p.wait()
	if *quality != "" {
		if err := p.command("quality " + *quality); err != nil {
			return err
		}
	}
	if *dimensions != "" {
		if err := p.command("dimensions " + strings.Replace(*dimensions, "x", " ", 1)); err != nil {
			return err
		}
	}

	left := make(chan string, 1)
	cb := lksdk.NewRoomCallback()
	cb.OnTrackPublished = p.onPublished
	cb.OnTrackSubscribed = p.onSubscribed
	cb.OnTrackSubscriptionFailed = func(sid string, rp *lksdk.RemoteParticipant) {
		out.emit(errorEvent{Event: "error", Error: "subscription failed: " + rp.Identity() + " " + sid})
	}
	cb.OnDisconnectedWithReason = func(reason lksdk.DisconnectionReason) {
		select {
		case left <- string(reason):
		default:
		}
	}

	joinCtx, cancel := context.WithTimeout(ctx, *joinTimeout)
	defer cancel()
	r := lksdk.NewRoom(cb)
	opts := []lksdk.ConnectOption{lksdk.WithAutoSubscribe(false)}
	var err error
	if *token != "" {
		err = r.JoinWithContextAndToken(joinCtx, *url, *token, opts...)
	} else {
		err = r.JoinWithContext(joinCtx, *url, lksdk.ConnectInfo{
			APIKey: *apiKey, APISecret: *apiSecret, RoomName: *room, ParticipantIdentity: *identity,
		}, opts...)
	}
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	defer r.Disconnect()
	out.emit(joinedEvent{Event: "joined", Room: r.Name(), Identity: r.LocalParticipant.Identity()})

	commands := make(chan string)
	go readLines(os.Stdin, commands) // ends with stdin; nothing waits for it
	for {
		select {
		case <-ctx.Done():
			reason := "signal"
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				reason = "-for elapsed"
			}
			out.emit(leftEvent{Event: "left", Reason: reason})
			return nil
		case reason := <-left:
			out.emit(leftEvent{Event: "left", Reason: "disconnected: " + reason})
			return nil
		case line, ok := <-commands:
			if !ok {
				commands = nil // stdin closed: keep running without commands
				continue
			}
			if line == "quit" {
				out.emit(leftEvent{Event: "left", Reason: "quit"})
				return nil
			}
			if err := p.command(line); err != nil {
				out.emit(errorEvent{Event: "error", Error: err.Error()})
			}
		}
	}
}

// readLines sends each non-empty line of f to lines, and closes it at the end of f.
func readLines(f *os.File, lines chan<- string) {
	defer close(lines)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines <- line
		}
	}
}

// parseQuality reads LOW, MEDIUM or HIGH (any case).
func parseQuality(s string) (livekit.VideoQuality, error) {
	q, ok := livekit.VideoQuality_value[strings.ToUpper(s)]
	if !ok || livekit.VideoQuality(q) == livekit.VideoQuality_OFF {
		return 0, fmt.Errorf("quality %q: want LOW, MEDIUM or HIGH", s)
	}
	return livekit.VideoQuality(q), nil
}

// parseDimensions reads "W H".
func parseDimensions(args []string) (w, h uint32, err error) {
	if len(args) != 2 {
		return 0, 0, errors.New("dimensions: want W H")
	}
	wi, err1 := strconv.ParseUint(args[0], 10, 32)
	hi, err2 := strconv.ParseUint(args[1], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("dimensions %q: want two numbers", strings.Join(args, " "))
	}
	return uint32(wi), uint32(hi), nil
}
