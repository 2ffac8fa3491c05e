package webui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Session and login limits of the control page.
const (
	sessionCookie = "roombox_session"
	sessionIdle   = 12 * time.Hour // a session unused this long ends
	maxSessions   = 32             // more logins evict the least recently used session
	loginWindow   = time.Minute
	loginFailures = 10 // failed logins within loginWindow before every login is refused
	csrfHeader    = "X-CSRF-Token"
)

var (
	errWrongPassword = errors.New("webui: wrong password")
	// errLoginLimited: too many failed logins; the device has a single admin, so the limit
	// is global: a guesser is stopped even when it spreads over many addresses.
	errLoginLimited = errors.New("webui: too many failed logins; try again later")
)

type session struct {
	csrf     string
	lastUsed time.Time
}

// webAuth checks the admin password and keeps the page's sessions in memory (a restart
// logs everyone out). Time is injected so tests drive expiry and the login limit.
type webAuth struct {
	now       func() time.Time
	setupCode string
	// adminHash returns the provisioned bcrypt hash of the admin password; empty: none yet,
	// and the setup code is the password.
	adminHash func() string
	onFailure func() // counts failed logins in the metrics

	mu       sync.Mutex
	sessions map[string]*session
	failures []time.Time // failed logins within loginWindow, oldest first
}

func newWebAuth(setupCode string, adminHash func() string, now func() time.Time, onFailure func()) *webAuth {
	return &webAuth{now: now, setupCode: setupCode, adminHash: adminHash, onFailure: onFailure,
		sessions: map[string]*session{}}
}

// retryAfter returns how long logins stay refused, or 0 if they are allowed now.
func (a *webAuth) retryAfter() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	kept := a.failures[:0]
	for _, t := range a.failures {
		if now.Sub(t) < loginWindow {
			kept = append(kept, t)
		}
	}
	a.failures = kept
	if len(a.failures) < loginFailures {
		return 0
	}
	return a.failures[0].Add(loginWindow).Sub(now)
}

// checkPassword reports whether password is the admin password, or the setup code while no
// admin password is provisioned. Refused while the login limit holds, even when right.
func (a *webAuth) checkPassword(password string) error {
	if a.retryAfter() > 0 {
		return errLoginLimited
	}
	var ok bool
	if hash := a.adminHash(); hash != "" {
		ok = bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	} else {
		ok = subtle.ConstantTimeCompare([]byte(password), []byte(a.setupCode)) == 1
	}
	if ok {
		return nil
	}
	a.mu.Lock()
	a.failures = append(a.failures, a.now())
	a.mu.Unlock()
	a.onFailure()
	return errWrongPassword
}

// newSession starts a session and returns its id (the cookie) and CSRF token.
func (a *webAuth) newSession() (id, csrf string) {
	id, csrf = randomToken(), randomToken()
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.expireLocked(now)
	if len(a.sessions) >= maxSessions {
		var oldest string
		for k, s := range a.sessions {
			if oldest == "" || s.lastUsed.Before(a.sessions[oldest].lastUsed) {
				oldest = k
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[id] = &session{csrf: csrf, lastUsed: now}
	return id, csrf
}

func (a *webAuth) expireLocked(now time.Time) {
	for k, s := range a.sessions {
		if now.Sub(s.lastUsed) >= sessionIdle {
			delete(a.sessions, k)
		}
	}
}

// session returns the CSRF token of the request's live session and marks it used.
func (a *webAuth) session(r *http.Request) (csrf string, ok bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[c.Value]
	if !ok {
		return "", false
	}
	now := a.now()
	if now.Sub(s.lastUsed) >= sessionIdle {
		delete(a.sessions, c.Value)
		return "", false
	}
	s.lastUsed = now
	return s.csrf, true
}

func (a *webAuth) endSession(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
}

// validCSRF compares the request's X-CSRF-Token with the session's in constant time.
func validCSRF(r *http.Request, csrf string) bool {
	got := r.Header.Get(csrfHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(csrf)) == 1
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionCookieFor is the session cookie: not readable by scripts, never sent cross-site.
// Not Secure: the page is served over plain HTTP on the LAN. No Max-Age: the server ends
// idle sessions, the browser drops the cookie when it closes.
func sessionCookieFor(id string) *http.Cookie {
	return &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// setRetryAfter writes Retry-After in whole seconds, rounded up.
func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
}
