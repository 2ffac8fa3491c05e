// Package localapi is the device's LocalAPI: HTTP/JSON on a unix socket in the state
// directory, served for a control.Controller, and the Client the CLI uses.
package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"roombox/control"
	"roombox/internal/jsonapi"
)

// The LocalAPI is HTTP/JSON on the unix socket SocketFile in the state directory, mode 0600:
// only root (or the daemon's user) can drive the device through it.
//
//	GET  /v1/status                      -> control.Status
//	POST /v1/mute, /v1/unmute {"target":"mic|camera|speaker"} (empty: mic) -> control.Status
//	POST /v1/volume    {"volume":0-100}  -> control.Status
//	GET  /v1/audio                       -> control.AudioSettings
//	POST /v1/audio     control.AudioPatch (the settings to change) -> control.AudioSettings
//	GET  /v1/video                       -> control.VideoStatus
//	POST /v1/video     control.VideoPatch (the capture to change) -> control.VideoStatus
//	                   (its settings at once; the camera's mode once it has switched)
//	POST /v1/press     {"button":"mic"}  -> control.Status
//	POST /v1/provision {"url","token"} or {"provisioning_token"} -> control.Status
//
// Errors are {"error": "..."}: 400 for bad input, 404/405 for unknown routes and methods,
// 500 when the device fails.

var (
	// ErrDaemonNotRunning is returned by Client calls when no daemon serves the
	// LocalAPI socket (missing, stale, or the state dir itself does not exist).
	ErrDaemonNotRunning = errors.New("localapi: daemon not running")
	// ErrDaemonRunning is returned by ServeLocalAPI when another daemon answers on the socket.
	ErrDaemonRunning = errors.New("localapi: another daemon is serving the LocalAPI")
)

// SocketFile is the LocalAPI's unix socket in the state directory, mode 0600.
const SocketFile = "roombox.sock"

const (
	// maxSocketPath is the portable limit on a unix socket path (sun_path is 104 bytes on
	// the BSDs, 108 on Linux, including the terminating NUL).
	maxSocketPath = 103
	shutdownGrace = 5 * time.Second
)

// SocketPath returns the path of the LocalAPI socket in the state directory dir.
func SocketPath(dir string) string { return filepath.Join(dir, SocketFile) }

// Serve serves the LocalAPI for c on the socket in dir until ctx ends, then closes
// the listener, waits for its goroutines and removes the socket. A stale socket left by a
// daemon that died is removed; if another daemon answers on it, Serve returns an
// error matching ErrDaemonRunning at once.
func Serve(ctx context.Context, dir string, c control.Controller, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := Listen(ctx, SocketPath(dir))
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, c, log)
}

// ServeListener is Serve on a socket already bound (Listen): the daemon binds it before it
// tells systemd it is ready, so a client started after READY=1 finds it answering.
func ServeListener(ctx context.Context, ln *net.UnixListener, c control.Controller, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           NewHandler(c, log),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("localapi: listening", "socket", ln.Addr().String())
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr: // Serve only returns early on a listener failure
		ln.Close()
		return fmt.Errorf("localapi: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-serveErr // http.ErrServerClosed; the Serve goroutine has returned
	log.Info("localapi: stopped")
	return nil
}

// Listen binds the socket at path with mode 0600, taking over a stale socket file.
func Listen(ctx context.Context, path string) (*net.UnixListener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("localapi: socket path %q is too long for a unix socket (%d > %d bytes)", path, len(path), maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if errors.Is(err, syscall.EADDRINUSE) {
		// Something is there: a live daemon, or the socket of one that died.
		if err := removeStaleSocket(ctx, path); err != nil {
			return nil, err
		}
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	}
	if err != nil {
		return nil, fmt.Errorf("localapi: listen on %s: %w", path, err)
	}
	// The state dir is 0700 already; make the socket itself owner-only before serving.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: %w", err)
	}
	return ln, nil
}

func removeStaleSocket(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("localapi: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("localapi: %s exists and is not a socket (%s); not removing it", path, fi.Mode().Type())
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "unix", path)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%w: %s answers", ErrDaemonRunning, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("localapi: probe %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("localapi: remove stale socket: %w", err)
	}
	return nil
}

// NewHandler returns the LocalAPI's HTTP handler for c. ServeLocalAPI serves it on
// the socket; the control page may mount it behind its own authentication.
func NewHandler(c control.Controller, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := NewAPI(c, log.With("api", "local"))
	mux := http.NewServeMux()
	mux.Handle("/v1/status", jsonapi.Only(http.MethodGet, h.Status))
	mux.Handle("/v1/mute", jsonapi.Only(http.MethodPost, h.Mute(true)))
	mux.Handle("/v1/unmute", jsonapi.Only(http.MethodPost, h.Mute(false)))
	mux.Handle("/v1/volume", jsonapi.Only(http.MethodPost, h.Volume))
	mux.Handle("/v1/audio", h.AudioRoutes())
	mux.Handle("/v1/video", h.VideoRoutes())
	mux.Handle("/v1/press", jsonapi.Only(http.MethodPost, h.Press))
	mux.Handle("/v1/provision", jsonapi.Only(http.MethodPost, h.Provision))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		jsonapi.WriteError(w, http.StatusNotFound, fmt.Sprintf("localapi: no endpoint %s", r.URL.Path))
	})
	return mux
}

// API's handlers serve the LocalAPI and, behind its login, the control page's API.
type API struct {
	c   control.Controller
	log *slog.Logger
}

// NewAPI returns the handlers of the requests the LocalAPI and the page share, for c.
func NewAPI(c control.Controller, log *slog.Logger) *API { return &API{c: c, log: log} }

// Status replies with the device's status.
func (h *API) Status(w http.ResponseWriter, r *http.Request) error {
	jsonapi.Write(w, http.StatusOK, h.c.Status(r.Context()))
	return nil
}

// muteRequest names what /v1/mute and /v1/unmute act on; an empty body means the mic.
type muteRequest struct {
	Target control.Target `json:"target,omitempty"`
}

func (h *API) Mute(muted bool) jsonapi.Handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		req := muteRequest{Target: control.TargetMic}
		if err := jsonapi.Decode(w, r, &req, true); err != nil {
			return err
		}
		t, err := control.ParseTarget(string(req.Target))
		if err != nil {
			return err
		}
		if err := h.c.SetMuted(r.Context(), t, muted); err != nil {
			return err
		}
		h.log.Info("mute", "target", t, "muted", muted)
		jsonapi.Write(w, http.StatusOK, h.c.Status(r.Context()))
		return nil
	}
}

type volumeRequest struct {
	Volume *int `json:"volume"`
}

func (h *API) Volume(w http.ResponseWriter, r *http.Request) error {
	var req volumeRequest
	if err := jsonapi.Decode(w, r, &req, false); err != nil {
		return err
	}
	if req.Volume == nil {
		return jsonapi.BadRequest(errors.New(`localapi: volume: missing "volume" (0 to 100)`))
	}
	if err := h.c.SetVolume(r.Context(), *req.Volume); err != nil {
		return err
	}
	h.log.Info("volume", "volume", *req.Volume)
	jsonapi.Write(w, http.StatusOK, h.c.Status(r.Context()))
	return nil
}

// AudioRoutes serves the audio settings: GET reads them, POST changes the fields its body
// gives and answers with the settings in force.
func (h *API) AudioRoutes() http.Handler {
	return jsonapi.Methods(map[string]jsonapi.Handler{http.MethodGet: h.Audio, http.MethodPost: h.SetAudio})
}

// Audio replies with the audio settings in force.
func (h *API) Audio(w http.ResponseWriter, r *http.Request) error {
	st := h.c.Status(r.Context())
	if st.Audio == nil {
		return errNoMic
	}
	jsonapi.Write(w, http.StatusOK, st.Audio)
	return nil
}

// errNoMic is asking for audio settings of a board without a microphone.
var errNoMic = control.NewInputError("localapi: audio: this board has no microphone")

// SetAudio changes the audio settings the body gives.
func (h *API) SetAudio(w http.ResponseWriter, r *http.Request) error {
	var p control.AudioPatch
	if err := jsonapi.Decode(w, r, &p, false); err != nil {
		return err
	}
	if p.IsZero() {
		return jsonapi.BadRequest(errors.New("localapi: audio: no setting given (echo_cancellation, noise_suppression, auto_gain, input_gain_db, input_sensitivity, dtx)"))
	}
	if err := h.c.SetAudio(r.Context(), p); err != nil {
		return err
	}
	h.log.Info("audio settings", "change", p)
	return h.Audio(w, r)
}

// VideoRoutes serves the camera's capture: GET reads it, POST changes the fields its body
// gives and answers with the video's status.
func (h *API) VideoRoutes() http.Handler {
	return jsonapi.Methods(map[string]jsonapi.Handler{http.MethodGet: h.Video, http.MethodPost: h.SetVideo})
}

// Video replies with the video's status: the settings, the camera's mode, the layers.
func (h *API) Video(w http.ResponseWriter, r *http.Request) error {
	st := h.c.Status(r.Context())
	if st.Video == nil {
		return errNoCamera
	}
	jsonapi.Write(w, http.StatusOK, st.Video)
	return nil
}

// errNoCamera is asking for video settings of a board without a camera.
var errNoCamera = control.NewInputError("localapi: video: this board has no camera")

// SetVideo changes the capture the body gives.
func (h *API) SetVideo(w http.ResponseWriter, r *http.Request) error {
	var p control.VideoPatch
	if err := jsonapi.Decode(w, r, &p, false); err != nil {
		return err
	}
	if p.IsZero() {
		return jsonapi.BadRequest(errors.New("localapi: video: no setting given (width and height, fps)"))
	}
	if err := h.c.SetVideo(r.Context(), p); err != nil {
		return err
	}
	h.log.Info("video settings", "change", p)
	return h.Video(w, r)
}

type pressRequest struct {
	Button string `json:"button"`
}

func (h *API) Press(w http.ResponseWriter, r *http.Request) error {
	var req pressRequest
	if err := jsonapi.Decode(w, r, &req, false); err != nil {
		return err
	}
	if err := control.ValidButton(req.Button); err != nil {
		return err
	}
	if err := h.c.Press(r.Context(), req.Button); err != nil {
		return err
	}
	h.log.Info("press", "button", req.Button)
	jsonapi.Write(w, http.StatusOK, h.c.Status(r.Context()))
	return nil
}

func (h *API) Provision(w http.ResponseWriter, r *http.Request) error {
	var req control.Provisioning
	if err := jsonapi.Decode(w, r, &req, false); err != nil {
		return err
	}
	if err := h.c.Provision(r.Context(), req); err != nil {
		return err
	}
	st := h.c.Status(r.Context())
	h.log.Info("provisioned", "url", st.URL, "room", st.Room, "identity", st.Identity)
	jsonapi.Write(w, http.StatusOK, st)
	return nil
}

// Client talks to a running daemon through its LocalAPI socket.
type Client struct {
	socket string
	hc     *http.Client
}

// Dial returns a client for the daemon whose state directory is dir. It connects per call;
// a call returns an error matching ErrDaemonNotRunning if no daemon serves the socket.
func Dial(dir string) *Client {
	socket := SocketPath(dir)
	tr := &http.Transport{
		DisableKeepAlives: true, // one short request per call; no idle connections to own
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", socket)
			if err != nil && notRunning(err) {
				return nil, daemonNotRunning(socket)
			}
			return conn, err
		},
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

func notRunning(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR)
}

// Socket returns the path of the socket the client connects to.
func (c *Client) Socket() string { return c.socket }

// APIError is an error reply of the LocalAPI. Its message is the server's.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string { return e.Message }

// BadInput reports a 400 reply: the request was at fault, not the device.
func (e *APIError) BadInput() bool { return e.StatusCode == http.StatusBadRequest }

// Is matches, for a 400 reply, the input-error sentinel (*control.InputError) whose message
// begins the reply's (control.ErrUnknownButton, provision.ErrInvalidProvisioning, ...), so
// callers tell bad input from a failing device as they would in-process.
func (e *APIError) Is(target error) bool {
	ie, ok := target.(*control.InputError)
	return ok && e.BadInput() && strings.HasPrefix(e.Message, ie.Error())
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (control.Status, error) {
	var st control.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// SetMuted mutes or unmutes the mic, camera or speaker.
func (c *Client) SetMuted(ctx context.Context, t control.Target, muted bool) error {
	path := "/v1/unmute"
	if muted {
		path = "/v1/mute"
	}
	return c.do(ctx, http.MethodPost, path, muteRequest{Target: t}, nil)
}

// SetVolume sets the speaker volume, 0..MaxVolume.
func (c *Client) SetVolume(ctx context.Context, volume int) error {
	return c.do(ctx, http.MethodPost, "/v1/volume", volumeRequest{Volume: &volume}, nil)
}

// Audio returns the audio settings in force.
func (c *Client) Audio(ctx context.Context) (control.AudioSettings, error) {
	var s control.AudioSettings
	err := c.do(ctx, http.MethodGet, "/v1/audio", nil, &s)
	return s, err
}

// SetAudio changes the audio settings p gives and returns the settings in force.
func (c *Client) SetAudio(ctx context.Context, p control.AudioPatch) (control.AudioSettings, error) {
	var s control.AudioSettings
	err := c.do(ctx, http.MethodPost, "/v1/audio", p, &s)
	return s, err
}

// Video returns the video's status: the capture asked for, the camera's mode, the layers.
func (c *Client) Video(ctx context.Context) (control.VideoStatus, error) {
	var s control.VideoStatus
	err := c.do(ctx, http.MethodGet, "/v1/video", nil, &s)
	return s, err
}

// SetVideo changes the capture p gives and returns the video's status.
func (c *Client) SetVideo(ctx context.Context, p control.VideoPatch) (control.VideoStatus, error) {
	var s control.VideoStatus
	err := c.do(ctx, http.MethodPost, "/v1/video", p, &s)
	return s, err
}

// Press presses and releases button, exactly as a hardware press would.
func (c *Client) Press(ctx context.Context, button string) error {
	return c.do(ctx, http.MethodPost, "/v1/press", pressRequest{Button: button}, nil)
}

// Provision hands p to the daemon, which validates, stores and applies it.
func (c *Client) Provision(ctx context.Context, p control.Provisioning) error {
	return c.do(ctx, http.MethodPost, "/v1/provision", p, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("localapi: client: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://roombox"+path, body)
	if err != nil {
		return fmt.Errorf("localapi: client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrDaemonNotRunning) {
			return daemonNotRunning(c.socket)
		}
		return fmt.Errorf("localapi: client: %s %s: %w", method, path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("localapi: client: %s %s: read reply: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var er jsonapi.ErrorReply
		if json.Unmarshal(data, &er) != nil || er.Error == "" {
			er.Error = fmt.Sprintf("localapi: %s %s: %s", method, path, resp.Status)
		}
		return &APIError{StatusCode: resp.StatusCode, Message: er.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("localapi: client: %s %s: decode reply: %w", method, path, err)
		}
	}
	return nil
}

// daemonNotRunning returns an error matching ErrDaemonNotRunning that names the socket.
func daemonNotRunning(socket string) error {
	return fmt.Errorf("%w (no LocalAPI socket at %s)", ErrDaemonNotRunning, socket)
}

// unwrapURLError drops net/http's `Get "http://roombox/v1/status":` wrapping: the URL is
// made up, the caller names the endpoint itself.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
