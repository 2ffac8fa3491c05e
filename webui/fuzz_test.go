package webui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"roombox/control"
	"roombox/control/controltest"
	"roombox/webui"
)

// fuzzRoutes are the POST routes whose bodies act on the Controller. Login and logout act
// on the session, preview on the daemon's media (TestPreviewFromDevice covers it).
var fuzzRoutes = []string{"/api/mute", "/api/volume", "/api/audio", "/api/press", "/api/provision", "/api/devices"}

// FuzzAPI sends arbitrary bodies to the signed-in API of a fake device: never a panic or a
// 5xx, 200 or 400 only (400 with a JSON error), and the device changes only on 200.
func FuzzAPI(f *testing.F) {
	fake := &controltest.Controller{}
	h, err := webui.NewTestWeb(fake, testCode, "", func() time.Time { return webT0 })
	if err != nil {
		f.Fatal(err)
	}
	login := httptest.NewRecorder()
	h.ServeHTTP(login, httptest.NewRequest("POST", "/api/login", bytes.NewReader([]byte(`{"password":"`+testCode+`"}`))))
	var reply struct{ CSRF string }
	if login.Code != http.StatusOK || json.Unmarshal(login.Body.Bytes(), &reply) != nil {
		f.Fatalf("login: %d %s", login.Code, login.Body)
	}
	cookies := login.Result().Cookies()

	type snapshot struct {
		st      control.Status
		presses []string
		prov    control.Provisioning
	}
	snap := func() snapshot {
		return snapshot{fake.Status(context.Background()), fake.Presses(), fake.Provisioning()}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("X-CSRF-Token", reply.CSRF)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		before := snap()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest:
			var e struct{ Error string }
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("POST %s %q: 400 without a JSON error: %s", path, body, rec.Body)
			}
			if after := snap(); !reflect.DeepEqual(before, after) {
				t.Fatalf("POST %s %q: refused but the device changed: %+v -> %+v", path, body, before, after)
			}
		default:
			t.Fatalf("POST %s %q: %d %s, want 200 or 400", path, body, rec.Code, rec.Body)
		}
	})
}
