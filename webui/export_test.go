package webui

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"roombox/control"
	"roombox/hal/sim"
	"roombox/telemetry"
)

// NewTestWeb returns the control page's handler over c with the sim board's devices and no
// preview, for tests with a fake Controller. adminHash is the provisioned bcrypt hash ("":
// the setup code is the password); now is the clock of sessions and the login limit.
func NewTestWeb(c control.Controller, setupCode, adminHash string, now func() time.Time) (http.Handler, error) {
	board, err := sim.NewBoard(sim.Config{})
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	m := telemetry.NewMetrics()
	live := func() telemetry.Sample {
		return telemetry.Sample{At: now(), State: c.Status(context.Background()).State}
	}
	m.Observe(c, live, board.Thermal)
	w := newWeb(webConfig{
		c:       c,
		auth:    newWebAuth(setupCode, func() string { return adminHash }, now, m.LoginFailed),
		log:     log,
		devices: BoardDevices(board),
		live:    live,
		meter:   fakeMeter(c),
		logs:    telemetry.NewLogRing(telemetry.LogLines),
		metrics: m,
	})
	return w.handler(), nil
}

// fakeMeter reads a talker at -20 dBov, silenced while c's mic is muted, as the device's
// meter is.
func fakeMeter(c control.Controller) func() MicLevel {
	return func() MicLevel {
		if c.Status(context.Background()).MicMuted {
			return MicLevel{Level: 127}
		}
		return MicLevel{Level: 20, Speaking: true}
	}
}
