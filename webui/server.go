// Package webui is the control page on the LAN: session login with CSRF, the page and its
// JSON API (status, mutes, volume, devices, provisioning), the WebRTC preview straight from
// the device, live charts over a websocket, the log tail and /metrics. It drives the device
// through control.Controller only.
package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"roombox/control"
	"roombox/internal/jsonapi"
	"roombox/localapi"
	"roombox/telemetry"
)

//go:embed assets
var assets embed.FS

var (
	pageTmpl  = template.Must(template.ParseFS(assets, "assets/index.html"))
	loginTmpl = template.Must(template.ParseFS(assets, "assets/login.html"))
)

// contentSecurityPolicy allows the page's own scripts, styles, API calls and websocket,
// and nothing from elsewhere; the preview's MediaStream needs no source.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

// Config is what the control page serves, and whom it asks.
type Config struct {
	Addr       string // the --http listen address
	Controller control.Controller
	// SetupCode is the password until provisioning sets an admin password; AdminHash
	// returns that password's bcrypt hash ("" while there is none).
	SetupCode string
	AdminHash func() string
	Devices   DeviceChooser
	Preview   PreviewMedia
	Live      func() telemetry.Sample // the latest live sample, for the charts
	// Meter reads the microphone's level after processing; nil on a board without one.
	Meter   func() MicLevel
	Logs    *telemetry.LogRing
	Metrics *telemetry.Metrics
	Log     *slog.Logger
}

// MicLevel is one reading of the microphone's meter: the level of its last 20 ms after
// processing, in -dBov as RFC 6464 carries it (0 loudest, 127 silence; 127 while muted), and
// whether it holds speech.
type MicLevel struct {
	Level    uint8 `json:"level"`
	Speaking bool  `json:"speaking"`
}

// PreviewMedia is what a preview shows: the tracks that leave the device (nil for a part
// the board lacks), where viewers' RTCP goes, and how to ask the encoder for a keyframe.
type PreviewMedia struct {
	Video, Audio webrtc.TrackLocal
	OnRTCP       func([]rtcp.Packet)
	Keyframe     func()
	// Watching, if set, is told when the first preview opens (true) and the last closes
	// (false): the video it shows must be encoded meanwhile, whoever else watches.
	Watching func(bool)
}

// Server is the control page and its JSON API on the --http address. It owns the page's
// preview peer connections and websockets; Serve stops and waits for them.
type Server struct {
	web *web
	ln  net.Listener
}

// New listens on cfg.Addr and returns the page's server; Serve serves it.
func New(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("webui: http listen: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := cfg.Preview
	if p.OnRTCP == nil {
		p.OnRTCP = func([]rtcp.Packet) {}
	}
	if p.Keyframe == nil {
		p.Keyframe = func() {}
	}
	if p.Watching == nil {
		p.Watching = func(bool) {}
	}
	w := newWeb(webConfig{
		c:       cfg.Controller,
		auth:    newWebAuth(cfg.SetupCode, cfg.AdminHash, time.Now, cfg.Metrics.LoginFailed),
		log:     cfg.Log,
		devices: cfg.Devices,
		preview: newPreviewer(cfg.Log, p),
		live:    cfg.Live,
		meter:   cfg.Meter,
		logs:    cfg.Logs,
		metrics: cfg.Metrics,
	})
	return &Server{web: w, ln: ln}, nil
}

// Addr is the address the page is served on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve runs until ctx ends, then shuts down with a short grace period and waits for the
// websockets and previews.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{Handler: s.web.handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("webui: http: %w", err)
	case <-ctx.Done():
		sctx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancelShutdown()
		_ = srv.Shutdown(sctx)
		<-errc
	}
	// Shutdown does not wait for hijacked connections: the websockets end with ctx.
	cancel()
	s.web.conns.Wait()
	s.web.preview.close()
	return err
}

// webConfig is what the control page serves; preview may be nil (no camera pipeline).
type webConfig struct {
	c       control.Controller
	auth    *webAuth
	log     *slog.Logger
	devices DeviceChooser
	preview *previewer
	live    func() telemetry.Sample
	meter   func() MicLevel
	logs    *telemetry.LogRing
	metrics *telemetry.Metrics
}

// web is the control page's HTTP handler.
type web struct {
	webConfig
	api    *localapi.API
	apiLog *slog.Logger   // the API's log lines, marked as the page's
	conns  sync.WaitGroup // websocket handlers, which http.Server.Shutdown does not wait for
}

func newWeb(cfg webConfig) *web {
	apiLog := cfg.log.With("api", "web")
	return &web{webConfig: cfg, api: localapi.NewAPI(cfg.c, apiLog), apiLog: apiLog}
}

func (w *web) handler() http.Handler {
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		jsonapi.Write(rw, http.StatusOK, map[string]string{"status": "ok", "state": w.c.Status(r.Context()).State})
	})
	mux.HandleFunc("GET /{$}", w.page)
	// The login page's styles and scripts are public; the firmware is no secret.
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.Handle("/api/login", jsonapi.Only(http.MethodPost, w.login))
	mux.Handle("/metrics", jsonapi.Only(http.MethodGet, w.metricsAuth(w.metrics.Handler())))

	api := http.NewServeMux()
	api.Handle("/api/logout", jsonapi.Only(http.MethodPost, w.logout))
	api.Handle("/api/status", jsonapi.Only(http.MethodGet, w.api.Status))
	api.Handle("/api/mute", jsonapi.Only(http.MethodPost, w.mute))
	api.Handle("/api/volume", jsonapi.Only(http.MethodPost, w.api.Volume))
	api.Handle("/api/audio", w.api.AudioRoutes())
	api.Handle("/api/video", w.api.VideoRoutes())
	api.Handle("/api/press", jsonapi.Only(http.MethodPost, w.api.Press))
	api.Handle("/api/provision", jsonapi.Only(http.MethodPost, w.api.Provision))
	api.Handle("/api/devices", jsonapi.Handler(w.devicesRoute))
	api.Handle("/api/preview", jsonapi.Only(http.MethodPost, w.previewOffer))
	api.Handle("/api/live", jsonapi.Only(http.MethodGet, w.liveSocket))
	api.Handle("/api/meter", jsonapi.Only(http.MethodGet, w.meterSocket))
	api.Handle("/api/logs", jsonapi.Only(http.MethodGet, w.logLines))
	api.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		jsonapi.WriteError(rw, http.StatusNotFound, fmt.Sprintf("webui: no API endpoint %s %s", r.Method, r.URL.Path))
	})
	mux.Handle("/api/", w.requireSession(api))
	return securityHeaders(mux)
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if !strings.HasPrefix(r.URL.Path, "/assets/") {
			// Pages carry the CSRF token and replies the device's state: never cached.
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(rw, r)
	})
}

// requireSession lets through requests of a live session; a POST must also carry the
// session's CSRF token, so another site cannot make the browser act.
func (w *web) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		csrf, ok := w.auth.session(r)
		if !ok {
			jsonapi.WriteError(rw, http.StatusUnauthorized, "webui: login required (POST /api/login)")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !validCSRF(r, csrf) {
			jsonapi.WriteError(rw, http.StatusForbidden, "webui: missing or wrong "+csrfHeader+" header")
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// metricsAuth lets a session or HTTP basic auth admin:PASSWORD (for scrapers) through.
func (w *web) metricsAuth(next http.Handler) jsonapi.Handler {
	return func(rw http.ResponseWriter, r *http.Request) error {
		if _, ok := w.auth.session(r); ok {
			next.ServeHTTP(rw, r)
			return nil
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			rw.Header().Set("WWW-Authenticate", `Basic realm="roombox"`)
			jsonapi.WriteError(rw, http.StatusUnauthorized, "webui: login required (a session, or basic auth admin:PASSWORD)")
			return nil
		}
		if err := w.checkLogin(rw, pass); err != nil {
			return nil
		}
		if user != "admin" {
			jsonapi.WriteError(rw, http.StatusUnauthorized, "webui: basic auth user must be admin")
			return nil
		}
		next.ServeHTTP(rw, r)
		return nil
	}
}

// checkLogin checks a password and, if it is refused, writes the 401 or 429 reply.
func (w *web) checkLogin(rw http.ResponseWriter, password string) error {
	err := w.auth.checkPassword(password)
	switch {
	case errors.Is(err, errLoginLimited):
		setRetryAfter(rw, w.auth.retryAfter())
		jsonapi.WriteError(rw, http.StatusTooManyRequests, err.Error())
	case err != nil:
		w.log.Warn("control page: failed login")
		jsonapi.WriteError(rw, http.StatusUnauthorized, err.Error())
	}
	return err
}

type loginRequest struct {
	Password *string `json:"password"`
}

func (w *web) login(rw http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := jsonapi.Decode(rw, r, &req, false); err != nil {
		return err
	}
	if req.Password == nil {
		return jsonapi.BadRequest(errors.New(`webui: login: missing "password"`))
	}
	if err := w.checkLogin(rw, *req.Password); err != nil {
		return nil
	}
	id, csrf := w.auth.newSession()
	http.SetCookie(rw, sessionCookieFor(id))
	w.log.Info("control page: login", "remote", r.RemoteAddr)
	jsonapi.Write(rw, http.StatusOK, map[string]string{"csrf": csrf})
	return nil
}

func (w *web) logout(rw http.ResponseWriter, r *http.Request) error {
	w.auth.endSession(r)
	c := sessionCookieFor("")
	c.MaxAge = -1
	http.SetCookie(rw, c)
	jsonapi.Write(rw, http.StatusOK, struct{}{})
	return nil
}

// page serves the control page to a session and the login form to everyone else.
func (w *web) page(rw http.ResponseWriter, r *http.Request) {
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	csrf, ok := w.auth.session(r)
	var err error
	if ok {
		err = pageTmpl.Execute(rw, struct{ CSRF string }{csrf})
	} else {
		err = loginTmpl.Execute(rw, nil)
	}
	if err != nil {
		w.log.Warn("control page", "err", err)
	}
}
