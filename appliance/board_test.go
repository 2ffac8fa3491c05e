package appliance

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"roombox/appliance/provision"
	"roombox/appliance/store"
	"roombox/control"
	"roombox/localapi"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"roombox/hal"
	"roombox/hal/sim"
	"roombox/internal/testkit/lktest"
	"roombox/internal/testkit/testwait"
	"roombox/media"
)

// runBoard runs the daemon in-process on board, provisioned for room on srv, until the
// test ends, and returns its LocalAPI client once it answers.
func runBoard(t *testing.T, srv *lktest.Server, room, identity string, board *hal.Board) *localapi.Client {
	t.Helper()
	api, _ := runDaemon(t, srv, room, identity, Options{board: board})
	return api
}

// runDaemon runs the daemon in-process with opts, provisioned for room on srv in a fresh
// state dir, until the test ends; it returns its LocalAPI client once the device is in the
// room, and the state dir.
func runDaemon(t *testing.T, srv *lktest.Server, room, identity string, opts Options) (*localapi.Client, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := provision.Apply(st, control.Provisioning{URL: srv.URL, Token: lktest.Token(t, room, identity)}, provision.Trust{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	opts.StateDir, opts.HTTPAddr = dir, "127.0.0.1:0"
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	testwait.Go(t, "Run", 20*time.Second, func(ctx context.Context) error { return Run(ctx, opts) })
	ctx := context.Background()
	api := localapi.Dial(dir)
	testwait.For(t, "the device in the room", 20*time.Second, func() bool {
		st, err := api.Status(ctx)
		return err == nil && st.State == control.StateInRoom.String()
	})
	return api, dir
}

func simParts(t *testing.T) *hal.Board {
	t.Helper()
	b, err := sim.New(simConfig(media.DefaultConfig))
	if err != nil {
		t.Fatal(err)
	}
	return b.HAL()
}

// publishedSources lists the sources of the tracks the server has for identity.
func publishedSources(t *testing.T, srv *lktest.Server, room, identity string) map[livekit.TrackSource]bool {
	t.Helper()
	p, err := srv.GetParticipant(context.Background(), room, identity)
	if err != nil {
		return nil
	}
	got := map[livekit.TrackSource]bool{}
	for _, tr := range p.Tracks {
		got[tr.Source] = true
	}
	return got
}

// A missing camera or microphone is skipped, not a failure: the device still joins and
// publishes what it has, and mutes of the missing part are stored (a board whose camera
// comes back honours them).
func TestBoardWithoutCameraOrMic(t *testing.T) {
	srv := lktest.Start(t)

	noCam := simParts(t)
	noCam.Camera = nil
	api := runBoard(t, srv, "parts", "no-camera", noCam)
	testwait.For(t, "the microphone alone published", 10*time.Second, func() bool {
		s := publishedSources(t, srv, "parts", "no-camera")
		return s[livekit.TrackSource_MICROPHONE] && !s[livekit.TrackSource_CAMERA]
	})
	if err := api.SetMuted(context.Background(), control.TargetCamera, true); err != nil {
		t.Fatalf("camera mute on a board without a camera: %v", err)
	}
	if st, _ := api.Status(context.Background()); st.Encoder != "" || !st.CameraOff {
		t.Fatalf("status without a camera: encoder %q, camera_off %v", st.Encoder, st.CameraOff)
	}

	bare := simParts(t)
	bare.Camera, bare.Mic = nil, nil
	runBoard(t, srv, "parts", "bare", bare)
	if s := publishedSources(t, srv, "parts", "bare"); s == nil || len(s) != 0 {
		t.Fatalf("a board with neither camera nor mic: server lists %v, want the participant with no tracks", s)
	}
}

// The board's hardware encoder is used when it opens (an instance per layer), and x264 when
// it does not; control.Status says which.
func TestEncoderChoice(t *testing.T) {
	srv := lktest.Start(t)
	opened := 0
	hw := simParts(t)
	hw.EncoderName = "test-m2m"
	hw.Encoder = func(cfg hal.EncoderConfig) (hal.VideoEncoder, error) {
		opened++
		return media.NewX264(media.X264Config{EncoderConfig: cfg})
	}
	api := runBoard(t, srv, "enc", "hw", hw)
	if st, _ := api.Status(context.Background()); st.Encoder != "test-m2m (hardware)" || st.Video == nil || opened != len(st.Video.Layers) {
		t.Fatalf("encoder %q, hardware opened %d times, video %+v; want test-m2m (hardware), once per layer", st.Encoder, opened, st.Video)
	}

	broken := simParts(t)
	broken.EncoderName = "test-m2m"
	broken.Encoder = func(hal.EncoderConfig) (hal.VideoEncoder, error) { return nil, errors.New("ESRCH") }
	api = runBoard(t, srv, "enc", "sw", broken)
	if st, _ := api.Status(context.Background()); st.Encoder != "x264 (software)" {
		t.Fatalf("encoder %q after the hardware one failed; want x264 (software)", st.Encoder)
	}
	testwait.For(t, "the camera published with the software encoder", 10*time.Second, func() bool {
		return publishedSources(t, srv, "enc", "sw")[livekit.TrackSource_CAMERA]
	})
}

// A pin map file that does not parse stops the linux hal with a message naming the file
// and the key, before any hardware is claimed.
func TestLinuxBoardBadPinMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins.yaml")
	if err := os.WriteFile(path, []byte("buttons:\n  mic: {line: GPIO17, bogus: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openLinuxBoard(context.Background(), path, VideoOptions{}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "pin map "+path) || !strings.Contains(err.Error(), "field bogus") {
		t.Fatalf("bad pin map: %v", err)
	}
}

// xrunSpeaker is a speaker that counts underruns, as ALSA's does.
type xrunSpeaker struct {
	hal.AudioOut
	n uint64
}

func (s *xrunSpeaker) Xruns() uint64 { return s.n }

// A board whose audio devices count xruns has them in control.Status; one whose do not, none.
func TestStatusReportsXruns(t *testing.T) {
	srv := lktest.Start(t)
	b := simParts(t)
	b.Speaker = &xrunSpeaker{AudioOut: b.Speaker, n: 3}
	api := runBoard(t, srv, "xruns", "box", b)
	st, err := api.Status(context.Background())
	if err != nil || st.SpeakerXruns != 3 || st.MicXruns != 0 {
		t.Fatalf("status: speaker_xruns %d, mic_xruns %d (%v); want 3 and 0", st.SpeakerXruns, st.MicXruns, err)
	}
}
