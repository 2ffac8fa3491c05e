package device

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"
)

// SetupCodeFile holds the per-device code that guards the page until an admin password is
// provisioned (no default password anywhere). Mode 0600.
const SetupCodeFile = "setup-code"

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Parse(pageHTML))

// webServer serves /healthz (unauthenticated) and the minimal status page and JSON status
// (HTTP basic auth: user "admin", password the setup code).
type webServer struct {
	d    *daemon
	log  *slog.Logger
	ln   net.Listener
	code string
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
	log.Info("control page", "url", "http://"+ln.Addr().String()+"/", "user", "admin", "setup_code", code)
	return &webServer{d: d, log: log, ln: ln, code: code}, nil
}

func (w *webServer) addr() string { return w.ln.Addr().String() }

// loadSetupCode reads the device's setup code, creating it on first start.
func loadSetupCode(dir string) (string, error) {
	code, err := loadOrCreate(filepath.Join(dir, SetupCodeFile), func() string { return rand.Text()[:12] })
	if err != nil {
		return "", fmt.Errorf("device: setup code: %w", err)
	}
	return code, nil
}

func (w *webServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]string{"status": "ok", "state": w.d.Status(r.Context()).State})
	})
	mux.Handle("GET /{$}", w.auth(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := pageTmpl.Execute(rw, w.d.Status(r.Context())); err != nil {
			w.log.Warn("page", "err", err)
		}
	})))
	mux.Handle("GET /api/status", w.auth(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(w.d.Status(r.Context()))
	})))
	return mux
}

func (w *webServer) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "admin" || subtle.ConstantTimeCompare([]byte(pass), []byte(w.code)) != 1 {
			rw.Header().Set("WWW-Authenticate", `Basic realm="roombox"`)
			http.Error(rw, "authentication required: user admin, password the setup code from the device log", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// serve runs until ctx ends, then shuts down with a short grace period.
func (w *webServer) serve(ctx context.Context) error {
	srv := &http.Server{Handler: w.handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(w.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("device: http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	return nil
}
