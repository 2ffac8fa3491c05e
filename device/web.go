package device

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// SetupCodeFile holds the per-device code that guards the page until an admin password is
// provisioned (no default password anywhere). Mode 0600.
const SetupCodeFile = "setup-code"

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

// webServer is the control page and its JSON API on the --http address. It owns the page's
// preview peer connections, live sampler and websockets; serve stops and waits for them.
type webServer struct {
	web     *web
	ln      net.Listener
	sampler *liveSampler
}

func newWebServer(d *daemon, store *Store, addr string, log *slog.Logger) (*webServer, error) {
	code, err := loadSetupCode(store.Dir())
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("device: http listen: %w", err)
	}
	sampler := &liveSampler{now: time.Now, state: func() string { return d.Status(context.Background()).State },
		stats: d.roomStats, thermal: d.board.Thermal, cpu: procCPUSeconds}
	// The preview sends what the board has: a board without a camera or a mic has no such track.
	var video, audio webrtc.TrackLocal
	onRTCP, keyframe := func([]rtcp.Packet) {}, func() {}
	if d.video != nil {
		video, onRTCP, keyframe = d.videoTrack, d.video.HandleRTCP, d.video.RequestKeyframe
		sampler.videoID = d.videoTrack.ID()
	}
	if d.audio != nil {
		audio = d.audioTrack
	}
	d.metrics.observe(d, sampler.latest, d.board.Thermal)
	w := newWeb(webConfig{
		c: d,
		auth: newWebAuth(code, func() string { cfg, _ := d.provisioning(); return cfg.AdminPasswordHash },
			time.Now, d.metrics.loginFailed),
		log:     log,
		devices: newBoardDevices(d.board),
		preview: newPreviewer(log, video, audio, onRTCP, keyframe),
		live:    sampler.latest,
		logs:    d.logs,
		metrics: d.metrics,
	})
	// The setup code goes to the console log once, by design, and not into the page's log
	// tail (log is the daemon's logger before the tail was added).
	d.consoleLog.Info("control page", "url", "http://"+ln.Addr().String()+"/", "setup_code", code)
	return &webServer{web: w, ln: ln, sampler: sampler}, nil
}

func (s *webServer) addr() string { return s.ln.Addr().String() }

// loadSetupCode reads the device's setup code, creating it on first start.
func loadSetupCode(dir string) (string, error) {
	code, err := loadOrCreate(filepath.Join(dir, SetupCodeFile), func() string { return rand.Text()[:12] })
	if err != nil {
		return "", fmt.Errorf("device: setup code: %w", err)
	}
	return code, nil
}

// serve runs until ctx ends, then shuts down with a short grace period and waits for the
// sampler, websockets and previews.
func (s *webServer) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.sampler.run(ctx)
	}()

	srv := &http.Server{Handler: s.web.handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("device: http: %w", err)
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
	wg.Wait()
	return err
}

// webConfig is what the control page serves; preview may be nil (no camera pipeline).
type webConfig struct {
	c       Controller
	auth    *webAuth
	log     *slog.Logger
	devices deviceChooser
	preview *previewer
	live    func() liveSample
	logs    *logRing
	metrics *deviceMetrics
}

// web is the control page's HTTP handler.
type web struct {
	webConfig
	api   *localAPI
	conns sync.WaitGroup // websocket handlers, which http.Server.Shutdown does not wait for
}

func newWeb(cfg webConfig) *web {
	return &web{webConfig: cfg, api: &localAPI{c: cfg.c, log: cfg.log.With("api", "web")}}
}

func (w *web) handler() http.Handler {
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ok", "state": w.c.Status(r.Context()).State})
	})
	mux.HandleFunc("GET /{$}", w.page)
	// The login page's styles and scripts are public; the firmware is no secret.
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.Handle("/api/login", only(http.MethodPost, w.login))
	mux.Handle("/metrics", only(http.MethodGet, w.metricsAuth(w.metrics.handler())))

	api := http.NewServeMux()
	api.Handle("/api/logout", only(http.MethodPost, w.logout))
	api.Handle("/api/status", only(http.MethodGet, w.api.status))
	api.Handle("/api/mute", only(http.MethodPost, w.mute))
	api.Handle("/api/volume", only(http.MethodPost, w.api.volume))
	api.Handle("/api/press", only(http.MethodPost, w.api.press))
	api.Handle("/api/provision", only(http.MethodPost, w.api.provision))
	api.Handle("/api/devices", apiHandler(w.devicesRoute))
	api.Handle("/api/preview", only(http.MethodPost, w.previewOffer))
	api.Handle("/api/live", only(http.MethodGet, w.liveSocket))
	api.Handle("/api/logs", only(http.MethodGet, w.logLines))
	api.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		writeError(rw, http.StatusNotFound, fmt.Sprintf("device: no API endpoint %s %s", r.Method, r.URL.Path))
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
			writeError(rw, http.StatusUnauthorized, "device: login required (POST /api/login)")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !validCSRF(r, csrf) {
			writeError(rw, http.StatusForbidden, "device: missing or wrong "+csrfHeader+" header")
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// metricsAuth lets a session or HTTP basic auth admin:PASSWORD (for scrapers) through.
func (w *web) metricsAuth(next http.Handler) apiHandler {
	return func(rw http.ResponseWriter, r *http.Request) error {
		if _, ok := w.auth.session(r); ok {
			next.ServeHTTP(rw, r)
			return nil
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			rw.Header().Set("WWW-Authenticate", `Basic realm="roombox"`)
			writeError(rw, http.StatusUnauthorized, "device: login required (a session, or basic auth admin:PASSWORD)")
			return nil
		}
		if err := w.checkLogin(rw, pass); err != nil {
			return nil
		}
		if user != "admin" {
			writeError(rw, http.StatusUnauthorized, "device: basic auth user must be admin")
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
		writeError(rw, http.StatusTooManyRequests, err.Error())
	case err != nil:
		w.log.Warn("control page: failed login")
		writeError(rw, http.StatusUnauthorized, err.Error())
	}
	return err
}

type loginRequest struct {
	Password *string `json:"password"`
}

func (w *web) login(rw http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decodeBody(rw, r, &req, false); err != nil {
		return err
	}
	if req.Password == nil {
		return badRequest{errors.New(`device: login: missing "password"`)}
	}
	if err := w.checkLogin(rw, *req.Password); err != nil {
		return nil
	}
	id, csrf := w.auth.newSession()
	http.SetCookie(rw, sessionCookieFor(id))
	w.log.Info("control page: login", "remote", r.RemoteAddr)
	writeJSON(rw, http.StatusOK, map[string]string{"csrf": csrf})
	return nil
}

func (w *web) logout(rw http.ResponseWriter, r *http.Request) error {
	w.auth.endSession(r)
	c := sessionCookieFor("")
	c.MaxAge = -1
	http.SetCookie(rw, c)
	writeJSON(rw, http.StatusOK, struct{}{})
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
