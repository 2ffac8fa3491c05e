package webui

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"roombox/control"
	"roombox/internal/jsonapi"
	"roombox/telemetry"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"
)

type webMuteRequest struct {
	Target *string `json:"target"`
	Muted  *bool   `json:"muted"`
}

func (w *web) mute(rw http.ResponseWriter, r *http.Request) error {
	var req webMuteRequest
	if err := jsonapi.Decode(rw, r, &req, false); err != nil {
		return err
	}
	switch {
	case req.Target == nil:
		return jsonapi.BadRequest(errors.New(`webui: mute: missing "target" (mic, camera or speaker)`))
	case req.Muted == nil:
		return jsonapi.BadRequest(errors.New(`webui: mute: missing "muted" (true or false)`))
	}
	t, err := control.ParseTarget(*req.Target)
	if err != nil {
		return err
	}
	if err := w.c.SetMuted(r.Context(), t, *req.Muted); err != nil {
		return err
	}
	w.apiLog.Info("mute", "target", t, "muted", *req.Muted)
	return w.api.Status(rw, r)
}

// devicesRoute lists the devices on GET and selects one on POST.
func (w *web) devicesRoute(rw http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		return w.listDevices(rw, r)
	case http.MethodPost:
		return w.selectDevice(rw, r)
	}
	rw.Header().Set("Allow", "GET, POST")
	jsonapi.WriteError(rw, http.StatusMethodNotAllowed, fmt.Sprintf("webui: %s %s: method not allowed (use GET or POST)", r.Method, r.URL.Path))
	return nil
}

func (w *web) listDevices(rw http.ResponseWriter, r *http.Request) error {
	jsonapi.Write(rw, http.StatusOK, w.devices.Devices())
	return nil
}

type selectDeviceRequest struct {
	Kind *string `json:"kind"`
	ID   *string `json:"id"`
}

func (w *web) selectDevice(rw http.ResponseWriter, r *http.Request) error {
	var req selectDeviceRequest
	if err := jsonapi.Decode(rw, r, &req, false); err != nil {
		return err
	}
	switch {
	case req.Kind == nil:
		return jsonapi.BadRequest(errors.New(`webui: devices: missing "kind" (camera, microphone or speaker)`))
	case req.ID == nil:
		return jsonapi.BadRequest(errors.New(`webui: devices: missing "id"`))
	}
	if err := w.devices.Select(*req.Kind, *req.ID); err != nil {
		return err
	}
	w.apiLog.Info("device selected", "kind", *req.Kind, "id", *req.ID)
	return w.listDevices(rw, r)
}

// sessionDescription is the JSON of RTCSessionDescription.
type sessionDescription struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

func (w *web) previewOffer(rw http.ResponseWriter, r *http.Request) error {
	if w.preview == nil {
		return errors.New("webui: preview: this device has no video pipeline")
	}
	var req sessionDescription
	if err := jsonapi.Decode(rw, r, &req, false); err != nil {
		return err
	}
	if req.Type != webrtc.SDPTypeOffer.String() {
		return jsonapi.BadRequest(fmt.Errorf(`webui: preview: "type" is %q, want "offer"`, req.Type))
	}
	// A viewer that reached the page on a loopback address is on this host.
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	tcp, _ := local.(*net.TCPAddr)
	loopback := tcp != nil && tcp.IP.IsLoopback()
	answer, err := w.preview.answer(r.Context(), req.SDP, loopback)
	if err != nil {
		return err
	}
	jsonapi.Write(rw, http.StatusOK, sessionDescription{Type: answer.Type.String(), SDP: answer.SDP})
	return nil
}

func (w *web) logLines(rw http.ResponseWriter, r *http.Request) error {
	jsonapi.Write(rw, http.StatusOK, map[string][]string{"lines": w.logs.Lines()})
	return nil
}

// liveUpgrader's default CheckOrigin refuses a browser's request from another origin
// (the Origin's host must be the request's Host): without it, any site the admin visits
// could open the websocket with the admin's cookie (cross-site websocket hijacking).
var liveUpgrader = websocket.Upgrader{HandshakeTimeout: 10 * time.Second}

// liveSocket sends the latest live sample once a second until the client goes away or
// the server stops.
func (w *web) liveSocket(rw http.ResponseWriter, r *http.Request) error {
	return w.stream(rw, r, telemetry.Interval, func() any { return w.live() })
}

// MeterInterval is how often /api/meter sends the microphone's level: fast enough for a
// meter to move with syllables.
const MeterInterval = 100 * time.Millisecond

// meterSocket sends the microphone's level and speaking flag every MeterInterval.
func (w *web) meterSocket(rw http.ResponseWriter, r *http.Request) error {
	if w.meter == nil {
		return errNoMic
	}
	return w.stream(rw, r, MeterInterval, func() any { return w.meter() })
}

// errNoMic is asking for the meter of a board without a microphone.
var errNoMic = control.NewInputError("webui: meter: this board has no microphone")

// stream upgrades to a websocket and sends next() as JSON every interval until the client
// goes away or the server stops.
func (w *web) stream(rw http.ResponseWriter, r *http.Request, interval time.Duration, next func() any) error {
	// Counted before the upgrade: Shutdown waits for the handler until the hijack, and
	// serve waits for the count after Shutdown.
	w.conns.Add(1)
	defer w.conns.Done()
	conn, err := liveUpgrader.Upgrade(rw, r, nil)
	if err != nil {
		return nil // the upgrader has replied
	}
	ctx := r.Context()
	gone := make(chan struct{})
	go func() {
		// Reading handles pings and the close frame; the client sends nothing else.
		defer close(gone)
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	defer func() {
		conn.Close()
		<-gone
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := conn.WriteJSON(next()); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "device stopping"), time.Now().Add(time.Second))
			return nil
		case <-gone:
			return nil
		case <-t.C:
		}
	}
}
