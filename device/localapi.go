package device

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
	"slices"
	"strings"
	"syscall"
	"time"

	"roombox/hal"
)

// The LocalAPI is HTTP/JSON on the unix socket SocketFile in the state directory, mode 0600:
// only root (or the daemon's user) can drive the device through it.
//
//	GET  /v1/status                      -> Status
//	POST /v1/mute, /v1/unmute {"target":"mic|camera|speaker"} (empty: mic) -> Status
//	POST /v1/volume    {"volume":0-100}  -> Status
//	POST /v1/press     {"button":"mic"}  -> Status
//	POST /v1/provision {"url","token"} or {"provisioning_token"} -> Status
//
// Errors are {"error": "..."}: 400 for bad input, 404/405 for unknown routes and methods,
// 500 when the device fails.

var (
	// ErrDaemonNotRunning is returned by LocalClient calls when no daemon serves the
	// LocalAPI socket (missing, stale, or the state dir itself does not exist).
	ErrDaemonNotRunning = errors.New("device: daemon not running")
	// ErrDaemonRunning is returned by ServeLocalAPI when another daemon answers on the socket.
	ErrDaemonRunning = errors.New("device: another daemon is serving the LocalAPI")
	// ErrUnknownButton is returned for a button name the board does not have.
	ErrUnknownButton = errors.New("device: unknown button")
)

// Buttons lists the button names Press accepts.
var Buttons = []string{hal.ButtonMic, hal.ButtonCamera, hal.ButtonSpeaker, hal.ButtonVolumeUp, hal.ButtonVolumeDown}

// ValidButton returns an error matching ErrUnknownButton unless name is in Buttons.
func ValidButton(name string) error {
	if name == "" {
		return fmt.Errorf("%w: no button named (want one of %v)", ErrUnknownButton, Buttons)
	}
	if !slices.Contains(Buttons, name) {
		return fmt.Errorf("%w %q (want one of %v)", ErrUnknownButton, name, Buttons)
	}
	return nil
}

const (
	maxRequestBody = 64 << 10
	// maxSocketPath is the portable limit on a unix socket path (sun_path is 104 bytes on
	// the BSDs, 108 on Linux, including the terminating NUL).
	maxSocketPath = 103
	shutdownGrace = 5 * time.Second
)

// SocketPath returns the path of the LocalAPI socket in the state directory dir.
func SocketPath(dir string) string { return filepath.Join(dir, SocketFile) }

// ServeLocalAPI serves the LocalAPI for c on the socket in dir until ctx ends, then closes
// the listener, waits for its goroutines and removes the socket. A stale socket left by a
// daemon that died is removed; if another daemon answers on it, ServeLocalAPI returns an
// error matching ErrDaemonRunning at once.
func ServeLocalAPI(ctx context.Context, dir string, c Controller, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := listenLocalAPI(ctx, SocketPath(dir))
	if err != nil {
		return err
	}
	return serveLocalAPI(ctx, ln, c, log)
}

// serveLocalAPI is ServeLocalAPI on a socket already bound: the daemon binds it before it
// tells systemd it is ready, so a client started after READY=1 finds it answering.
func serveLocalAPI(ctx context.Context, ln *net.UnixListener, c Controller, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           NewLocalAPIHandler(c, log),
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
		return fmt.Errorf("device: localapi: %w", err)
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

// listenLocalAPI binds the socket at path with mode 0600, taking over a stale socket file.
func listenLocalAPI(ctx context.Context, path string) (*net.UnixListener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("device: localapi: socket path %q is too long for a unix socket (%d > %d bytes)", path, len(path), maxSocketPath)
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
		return nil, fmt.Errorf("device: localapi: listen on %s: %w", path, err)
	}
	// The state dir is 0700 already; make the socket itself owner-only before serving.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("device: localapi: %w", err)
	}
	return ln, nil
}

func removeStaleSocket(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("device: localapi: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("device: localapi: %s exists and is not a socket (%s); not removing it", path, fi.Mode().Type())
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
		return fmt.Errorf("device: localapi: probe %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("device: localapi: remove stale socket: %w", err)
	}
	return nil
}

// NewLocalAPIHandler returns the LocalAPI's HTTP handler for c. ServeLocalAPI serves it on
// the socket; the control page may mount it behind its own authentication.
func NewLocalAPIHandler(c Controller, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &localAPI{c: c, log: log.With("api", "local")}
	mux := http.NewServeMux()
	mux.Handle("/v1/status", only(http.MethodGet, h.status))
	mux.Handle("/v1/mute", only(http.MethodPost, h.mute(true)))
	mux.Handle("/v1/unmute", only(http.MethodPost, h.mute(false)))
	mux.Handle("/v1/volume", only(http.MethodPost, h.volume))
	mux.Handle("/v1/press", only(http.MethodPost, h.press))
	mux.Handle("/v1/provision", only(http.MethodPost, h.provision))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("device: localapi: no endpoint %s", r.URL.Path))
	})
	return mux
}

// localAPI's handlers serve the LocalAPI and, behind its login, the control page's API.
type localAPI struct {
	c   Controller
	log *slog.Logger
}

// apiHandler handles one request; a returned error becomes the JSON error reply.
type apiHandler func(w http.ResponseWriter, r *http.Request) error

func (h apiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h(w, r); err != nil {
		writeError(w, errorStatus(err), err.Error())
	}
}

// only serves h for method and refuses the others with 405.
func only(method string, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("device: %s %s: method not allowed (use %s)", r.Method, r.URL.Path, method))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// badRequest marks an error as the client's fault.
type badRequest struct{ err error }

func (e badRequest) Error() string { return e.err.Error() }
func (e badRequest) Unwrap() error { return e.err }

func errorStatus(err error) int {
	var br badRequest
	switch {
	case errors.As(err, &br), errors.Is(err, ErrInvalidProvisioning), errors.Is(err, ErrUnknownButton),
		errors.Is(err, ErrUnknownTarget), errors.Is(err, ErrBadVolume),
		errors.Is(err, ErrUnknownDeviceKind), errors.Is(err, ErrUnknownDevice):
		return http.StatusBadRequest
	case errors.Is(err, ErrPreviewBusy):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (h *localAPI) status(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, h.c.Status(r.Context()))
	return nil
}

// muteRequest names what /v1/mute and /v1/unmute act on; an empty body means the mic.
type muteRequest struct {
	Target Target `json:"target,omitempty"`
}

func (h *localAPI) mute(muted bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		req := muteRequest{Target: TargetMic}
		if err := decodeBody(w, r, &req, true); err != nil {
			return err
		}
		t, err := ParseTarget(string(req.Target))
		if err != nil {
			return err
		}
		if err := h.c.SetMuted(r.Context(), t, muted); err != nil {
			return err
		}
		h.log.Info("mute", "target", t, "muted", muted)
		writeJSON(w, http.StatusOK, h.c.Status(r.Context()))
		return nil
	}
}

type volumeRequest struct {
	Volume *int `json:"volume"`
}

func (h *localAPI) volume(w http.ResponseWriter, r *http.Request) error {
	var req volumeRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.Volume == nil {
		return badRequest{errors.New(`device: volume: missing "volume" (0 to 100)`)}
	}
	if err := h.c.SetVolume(r.Context(), *req.Volume); err != nil {
		return err
	}
	h.log.Info("volume", "volume", *req.Volume)
	writeJSON(w, http.StatusOK, h.c.Status(r.Context()))
	return nil
}

type pressRequest struct {
	Button string `json:"button"`
}

func (h *localAPI) press(w http.ResponseWriter, r *http.Request) error {
	var req pressRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if err := ValidButton(req.Button); err != nil {
		return err
	}
	if err := h.c.Press(r.Context(), req.Button); err != nil {
		return err
	}
	h.log.Info("press", "button", req.Button)
	writeJSON(w, http.StatusOK, h.c.Status(r.Context()))
	return nil
}

func (h *localAPI) provision(w http.ResponseWriter, r *http.Request) error {
	var req Provisioning
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if err := h.c.Provision(r.Context(), req); err != nil {
		return err
	}
	st := h.c.Status(r.Context())
	h.log.Info("provisioned", "url", st.URL, "room", st.Room, "identity", st.Identity)
	writeJSON(w, http.StatusOK, st)
	return nil
}

// decodeBody decodes the request's JSON object into v: size-limited, unknown fields refused,
// nothing after the object. An empty body is accepted only if emptyOK.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return badRequest{fmt.Errorf("device: request body larger than %d bytes", mbe.Limit)}
		}
		return badRequest{fmt.Errorf("device: read request: %w", err)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		return badRequest{errors.New("device: empty request body, want a JSON object")}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest{fmt.Errorf("device: bad JSON: %w", err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest{errors.New("device: bad JSON: data after the object")}
	}
	return nil
}

type errorReply struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorReply{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		data, _ = json.Marshal(errorReply{Error: "device: localapi: encode reply: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(data, '\n'))
}

// LocalClient talks to a running daemon through its LocalAPI socket.
type LocalClient struct {
	socket string
	hc     *http.Client
}

// Dial returns a client for the daemon whose state directory is dir. It connects per call;
// a call returns an error matching ErrDaemonNotRunning if no daemon serves the socket.
func Dial(dir string) *LocalClient {
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
	return &LocalClient{socket: socket, hc: &http.Client{Transport: tr}}
}

func notRunning(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR)
}

// Socket returns the path of the socket the client connects to.
func (c *LocalClient) Socket() string { return c.socket }

// APIError is an error reply of the LocalAPI. Its message is the server's.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string { return e.Message }

// Is matches ErrInvalidProvisioning and ErrUnknownButton for a 400 reply whose message
// starts with theirs, so callers can tell bad input from a failing device.
func (e *APIError) Is(target error) bool {
	if e.StatusCode != http.StatusBadRequest {
		return false
	}
	switch target {
	case ErrInvalidProvisioning:
		return strings.HasPrefix(e.Message, "device: provisioning ")
	case ErrUnknownButton:
		return strings.HasPrefix(e.Message, ErrUnknownButton.Error())
	}
	return false
}

// Status returns the daemon's status.
func (c *LocalClient) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// SetMuted mutes or unmutes the mic, camera or speaker.
func (c *LocalClient) SetMuted(ctx context.Context, t Target, muted bool) error {
	path := "/v1/unmute"
	if muted {
		path = "/v1/mute"
	}
	return c.do(ctx, http.MethodPost, path, muteRequest{Target: t}, nil)
}

// SetVolume sets the speaker volume, 0..MaxVolume.
func (c *LocalClient) SetVolume(ctx context.Context, volume int) error {
	return c.do(ctx, http.MethodPost, "/v1/volume", volumeRequest{Volume: &volume}, nil)
}

// Press presses and releases button, exactly as a hardware press would.
func (c *LocalClient) Press(ctx context.Context, button string) error {
	return c.do(ctx, http.MethodPost, "/v1/press", pressRequest{Button: button}, nil)
}

// Provision hands p to the daemon, which validates, stores and applies it.
func (c *LocalClient) Provision(ctx context.Context, p Provisioning) error {
	return c.do(ctx, http.MethodPost, "/v1/provision", p, nil)
}

func (c *LocalClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("device: localapi client: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://roombox"+path, body)
	if err != nil {
		return fmt.Errorf("device: localapi client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrDaemonNotRunning) {
			return daemonNotRunning(c.socket)
		}
		return fmt.Errorf("device: localapi client: %s %s: %w", method, path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("device: localapi client: %s %s: read reply: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var er errorReply
		if json.Unmarshal(data, &er) != nil || er.Error == "" {
			er.Error = fmt.Sprintf("device: localapi: %s %s: %s", method, path, resp.Status)
		}
		return &APIError{StatusCode: resp.StatusCode, Message: er.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("device: localapi client: %s %s: decode reply: %w", method, path, err)
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
