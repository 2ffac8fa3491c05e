package webui_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"roombox/control"
	"roombox/control/controltest"
	"roombox/hal/sim"
	"roombox/webui"
)

const testCode = "setup-code-1234"

var webT0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// webPage is a browser of the control page served for a fake device.
type webPage struct {
	t     *testing.T
	fake  *controltest.Controller
	srv   *httptest.Server
	hc    *http.Client
	clock *sim.FakeClock
	csrf  string
}

func newWebPage(t *testing.T, adminHash string) *webPage {
	t.Helper()
	p := &webPage{t: t, fake: &controltest.Controller{}, clock: sim.NewFakeClock(webT0)}
	h, err := webui.NewTestWeb(p.fake, testCode, adminHash, p.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = httptest.NewServer(h)
	t.Cleanup(p.srv.Close)
	p.hc = p.newClient()
	return p
}

// newClient is another browser: its own cookie jar.
func (p *webPage) newClient() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

// call makes one request with p's client; csrf "" sends no X-CSRF-Token.
func (p *webPage) call(method, path, body, csrf string) (*http.Response, string) {
	p.t.Helper()
	return p.callWith(p.hc, method, path, body, csrf)
}

func (p *webPage) callWith(hc *http.Client, method, path, body, csrf string) (*http.Response, string) {
	p.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.srv.URL+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := hc.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp, string(b)
}

func (p *webPage) login(password string) *http.Response {
	p.t.Helper()
	b, _ := json.Marshal(map[string]string{"password": password})
	resp, body := p.call("POST", "/api/login", string(b), "")
	if resp.StatusCode == http.StatusOK {
		var reply struct{ CSRF string }
		if err := json.Unmarshal([]byte(body), &reply); err != nil || reply.CSRF == "" {
			p.t.Fatalf("login reply %q: %v", body, err)
		}
		p.csrf = reply.CSRF
	}
	return resp
}

func (p *webPage) mustLogin() {
	p.t.Helper()
	if resp := p.login(testCode); resp.StatusCode != http.StatusOK {
		p.t.Fatalf("login with the setup code: %s", resp.Status)
	}
}

func wantStatus(t *testing.T, what string, resp *http.Response, body string, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("%s: %s %q, want %d", what, resp.Status, body, code)
	}
}

// apiRoutes are every authenticated route of the contract, with a body valid for it.
var apiRoutes = []struct{ method, path, body string }{
	{"GET", "/api/status", ""},
	{"POST", "/api/logout", "{}"},
	{"POST", "/api/mute", `{"target":"mic","muted":true}`},
	{"POST", "/api/volume", `{"volume":50}`},
	{"POST", "/api/press", `{"button":"mic"}`},
	{"GET", "/api/audio", ""},
	{"POST", "/api/audio", `{"dtx":true}`},
	{"POST", "/api/provision", `{"provisioning_token":"x"}`},
	{"GET", "/api/devices", ""},
	{"POST", "/api/devices", `{"kind":"camera","id":"sim-camera"}`},
	{"POST", "/api/preview", `{"type":"offer","sdp":"v=0"}`},
	{"GET", "/api/live", ""},
	{"GET", "/api/meter", ""},
	{"GET", "/api/logs", ""},
	{"GET", "/api/nothing-here", ""},
	{"GET", "/metrics", ""},
}

func TestWebUnauthenticated(t *testing.T) {
	p := newWebPage(t, "")
	for _, r := range apiRoutes {
		resp, body := p.call(r.method, r.path, r.body, "")
		var reply struct{ Error string }
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal([]byte(body), &reply) != nil || reply.Error == "" {
			t.Errorf("%s %s without a session: %s %q, want 401 with a JSON error", r.method, r.path, resp.Status, body)
		}
	}
	if p.fake.MicMuted() || len(p.fake.Presses()) > 0 {
		t.Error("an unauthenticated call changed the device")
	}
	resp, body := p.call("GET", "/healthz", "", "")
	wantStatus(t, "healthz", resp, body, http.StatusOK)
	resp, body = p.call("GET", "/", "", "")
	wantStatus(t, "GET / without a session", resp, body, http.StatusOK)
	if !strings.Contains(body, `id="password"`) || strings.Contains(body, `id="mic"`) {
		t.Errorf("GET / without a session is not the login form:\n%s", body)
	}
}

func TestWebLoginAndPage(t *testing.T) {
	p := newWebPage(t, "")
	resp := p.login(testCode)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "roombox_session" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("login set no roombox_session cookie: %v", resp.Header["Set-Cookie"])
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || len(cookie.Value) < 40 {
		t.Errorf("session cookie %q: want HttpOnly, SameSite=Strict, Path=/ and a 32-byte random id", resp.Header.Get("Set-Cookie"))
	}
	resp, body := p.call("GET", "/", "", "")
	wantStatus(t, "GET / with a session", resp, body, http.StatusOK)
	for _, id := range []string{`id="state"`, `id="mic"`, `id="preview"`, `id="chart-temp"`, `id="log"`, `name="csrf-token" content="` + p.csrf + `"`} {
		if !strings.Contains(body, id) {
			t.Errorf("control page lacks %s", id)
		}
	}
	h := resp.Header
	if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("page headers: CSP %q, X-Frame-Options %q, Cache-Control %q", h.Get("Content-Security-Policy"), h.Get("X-Frame-Options"), h.Get("Cache-Control"))
	}
	for _, asset := range []string{"/assets/app.js", "/assets/app.css", "/assets/login.js"} {
		resp, body := p.call("GET", asset, "", "")
		wantStatus(t, asset, resp, body, http.StatusOK)
	}
	resp, body = p.call("GET", "/api/status", "", "")
	wantStatus(t, "status", resp, body, http.StatusOK)
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("API reply Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
	}
}

func TestWebCSRF(t *testing.T) {
	p := newWebPage(t, "")
	p.mustLogin()
	body := `{"target":"mic","muted":true}`
	resp, reply := p.call("POST", "/api/mute", body, "")
	wantStatus(t, "mute without X-CSRF-Token", resp, reply, http.StatusForbidden)
	resp, reply = p.call("POST", "/api/mute", body, p.csrf+"x")
	wantStatus(t, "mute with a wrong X-CSRF-Token", resp, reply, http.StatusForbidden)
	if p.fake.MicMuted() {
		t.Fatal("a POST without the right CSRF token muted the mic")
	}
	// Another session's token is wrong for this one.
	other := p.newClient()
	resp, reply = p.callWith(other, "POST", "/api/login", `{"password":"`+testCode+`"}`, "")
	wantStatus(t, "second login", resp, reply, http.StatusOK)
	var second struct{ CSRF string }
	json.Unmarshal([]byte(reply), &second)
	resp, reply = p.call("POST", "/api/mute", body, second.CSRF)
	wantStatus(t, "mute with another session's token", resp, reply, http.StatusForbidden)

	resp, reply = p.call("POST", "/api/mute", body, p.csrf)
	wantStatus(t, "mute with the session's token", resp, reply, http.StatusOK)
	var st control.Status
	if err := json.Unmarshal([]byte(reply), &st); err != nil || !st.MicMuted || !p.fake.MicMuted() {
		t.Fatalf("mute reply %q (%v); fake muted %v", reply, err, p.fake.MicMuted())
	}
}

func TestWebLoginRateLimit(t *testing.T) {
	p := newWebPage(t, "")
	for i := range 10 {
		if resp := p.login("wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %s, want 401", i+1, resp.Status)
		}
		p.clock.Advance(time.Second)
	}
	resp := p.login("wrong")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("11th wrong password within a minute: %s, Retry-After %q; want 429 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	// Limited means limited: the right password is refused too, so guessing cannot go on.
	if resp := p.login(testCode); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right password while limited: %s, want 429", resp.Status)
	}
	// The first failure was 10 s ago; it leaves the window after 50 s more.
	p.clock.Advance(50 * time.Second)
	if resp := p.login(testCode); resp.StatusCode != http.StatusOK {
		t.Fatalf("right password a minute after the first failure: %s, want 200", resp.Status)
	}
	resp, body := p.call("GET", "/metrics", "", "")
	wantStatus(t, "metrics", resp, body, http.StatusOK)
	if !strings.Contains(body, "roombox_login_failures_total 10\n") {
		t.Errorf("metrics do not count the 10 failed logins:\n%s", grepLines(body, "login"))
	}
}

func TestWebLogoutAndExpiry(t *testing.T) {
	p := newWebPage(t, "")
	p.mustLogin()
	resp, body := p.call("POST", "/api/logout", "", p.csrf)
	wantStatus(t, "logout", resp, body, http.StatusOK)
	resp, body = p.call("GET", "/api/status", "", "")
	wantStatus(t, "status after logout", resp, body, http.StatusUnauthorized)

	// The old cookie is dead on the server, not only dropped by this browser.
	p.mustLogin()
	u := p.srv.URL + "/"
	req, _ := http.NewRequest("GET", p.srv.URL+"/api/status", nil)
	for _, c := range p.hc.Jar.Cookies(mustURL(t, u)) {
		req.AddCookie(c)
	}
	resp, body = p.call("POST", "/api/logout", "", p.csrf)
	wantStatus(t, "second logout", resp, body, http.StatusOK)
	old, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	old.Body.Close()
	if old.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a logged-out session's cookie: %s, want 401", old.Status)
	}

	p.mustLogin()
	p.clock.Advance(11 * time.Hour)
	resp, body = p.call("GET", "/api/status", "", "")
	wantStatus(t, "status after 11 h idle", resp, body, http.StatusOK)
	p.clock.Advance(12 * time.Hour)
	resp, body = p.call("GET", "/api/status", "", "")
	wantStatus(t, "status after 12 h idle", resp, body, http.StatusUnauthorized)
}

func TestWebAdminPassword(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := newWebPage(t, string(hash))
	if resp := p.login(testCode); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("setup code once an admin password is provisioned: %s, want 401", resp.Status)
	}
	if resp := p.login("correct horse"); resp.StatusCode != http.StatusOK {
		t.Fatalf("admin password: %s, want 200", resp.Status)
	}
	// Scrapers use basic auth with the same password.
	req, _ := http.NewRequest("GET", p.srv.URL+"/metrics", nil)
	req.SetBasicAuth("admin", "correct horse")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics with basic auth admin:password: %s", resp.Status)
	}
	req.SetBasicAuth("admin", testCode)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics with basic auth admin:setup-code: %s, want 401", resp.Status)
	}
}

func TestWebBadInput(t *testing.T) {
	p := newWebPage(t, "")
	p.mustLogin()
	for _, c := range []struct{ path, body, want string }{
		{"/api/mute", `{"target":"lamp","muted":true}`, `unknown mute target "lamp"`},
		{"/api/mute", `{"target":"mic"}`, `missing "muted"`},
		{"/api/mute", `{"muted":true}`, `missing "target"`},
		{"/api/mute", `{"target":"mic","muted":"yes"}`, "bad JSON"},
		{"/api/mute", `{"target":"mic","muted":true,"force":1}`, `unknown field "force"`},
		{"/api/mute", `{"target":"mic",`, "bad JSON"},
		{"/api/mute", ``, "empty request body"},
		{"/api/volume", `{"volume":101}`, "volume out of range: 101"},
		{"/api/volume", `{"volume":-1}`, "volume out of range: -1"},
		{"/api/volume", `{}`, `missing "volume"`},
		{"/api/volume", `{"volume":50}{}`, "data after the object"},
		{"/api/press", `{"button":"eject"}`, `unknown button "eject"`},
		{"/api/provision", `{"url":"ws://x","token":"not-a-jwt"}`, "provisioning"},
		{"/api/provision", `{"room":"x"}`, `unknown field "room"`},
		{"/api/devices", `{"kind":"camera","id":"usb-cam-9"}`, `unknown device: no camera with id "usb-cam-9"`},
		{"/api/devices", `{"kind":"printer","id":"x"}`, `unknown device kind "printer"`},
		{"/api/devices", `{"kind":"camera"}`, `missing "id"`},
		{"/api/login", `{"pass":"x"}`, `unknown field "pass"`},
		{"/api/login", `{}`, `missing "password"`},
	} {
		resp, body := p.call("POST", c.path, c.body, p.csrf)
		var reply struct{ Error string }
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal([]byte(body), &reply) != nil || !strings.Contains(reply.Error, c.want) {
			t.Errorf("POST %s %s: %s %q, want 400 naming %q", c.path, c.body, resp.Status, body, c.want)
		}
	}
	st := p.fake.Status(t.Context())
	if st.MicMuted || st.Volume != 0 || st.Provisioned || len(p.fake.Presses()) > 0 {
		t.Errorf("bad input changed the device: %+v", st)
	}
}

func TestWebDevices(t *testing.T) {
	p := newWebPage(t, "")
	p.mustLogin()
	resp, body := p.call("GET", "/api/devices", "", "")
	wantStatus(t, "devices", resp, body, http.StatusOK)
	var list webui.MediaDevices
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Cameras) != 1 || len(list.Microphones) != 1 || len(list.Speakers) != 1 || !list.Cameras[0].Selected {
		t.Fatalf("sim devices: %s, want one selected camera, microphone and speaker", body)
	}
	sel, _ := json.Marshal(map[string]string{"kind": "microphone", "id": list.Microphones[0].ID})
	resp, body = p.call("POST", "/api/devices", string(sel), p.csrf)
	wantStatus(t, "select the listed microphone", resp, body, http.StatusOK)
	resp, body = p.call("PUT", "/api/devices", string(sel), p.csrf)
	wantStatus(t, "PUT /api/devices", resp, body, http.StatusMethodNotAllowed)
}

func TestWebLiveWebsocket(t *testing.T) {
	p := newWebPage(t, "")
	p.mustLogin()
	wsURL := "ws" + strings.TrimPrefix(p.srv.URL, "http") + "/api/live"
	cookies := p.hc.Jar.Cookies(mustURL(t, p.srv.URL+"/"))
	header := func(origin string) http.Header {
		h := http.Header{"Origin": {origin}}
		for _, c := range cookies {
			h.Add("Cookie", c.String())
		}
		return h
	}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL, header("http://evil.example"))
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("websocket from a foreign Origin: err %v, response %v; want 403", err, resp)
	}
	_, resp, err = websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {p.srv.URL}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("websocket without a session: err %v, response %v; want 401", err, resp)
	}
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, header(p.srv.URL))
	if err != nil {
		t.Fatalf("websocket from the page's origin: %v", err)
	}
	defer conn.Close()
	var sample map[string]any
	if err := conn.ReadJSON(&sample); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"state", "video_bps", "packet_loss", "rtt_seconds", "cpu_percent", "temperature_c", "estimate_bps"} {
		if _, ok := sample[k]; !ok {
			t.Errorf("live sample lacks %q: %v", k, sample)
		}
	}
	if sample["state"] != "unprovisioned" {
		t.Errorf("live state %v, want unprovisioned", sample["state"])
	}
}

// TestWebMeterWebsocket: /api/meter streams the microphone's level and speaking flag, and
// follows a mute.
func TestWebMeterWebsocket(t *testing.T) {
	p := newWebPage(t, "")
	p.mustLogin()
	h := http.Header{"Origin": {p.srv.URL}}
	for _, c := range p.hc.Jar.Cookies(mustURL(t, p.srv.URL+"/")) {
		h.Add("Cookie", c.String())
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(p.srv.URL, "http")+"/api/meter", h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var m webui.MicLevel
	if err := conn.ReadJSON(&m); err != nil {
		t.Fatal(err)
	}
	if m != (webui.MicLevel{Level: 20, Speaking: true}) {
		t.Errorf("meter %+v, want the talker at -20 dBov, speaking", m)
	}
	resp, body := p.call("POST", "/api/mute", `{"target":"mic","muted":true}`, p.csrf)
	wantStatus(t, "mute", resp, body, http.StatusOK)
	// Readings queued before the mute come first; then silence, and only silence.
	silent := webui.MicLevel{Level: 127}
	for n := 0; m != silent; n++ {
		if n == 100 {
			t.Fatalf("100 readings after the mute, none silent: %+v", m)
		}
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m != silent {
			t.Errorf("meter while muted %+v, want silence, not speaking", m)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func grepLines(text, sub string) string {
	var out bytes.Buffer
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out.WriteString(l + "\n")
		}
	}
	return out.String()
}
