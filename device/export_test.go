package device

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"roombox/hal/sim"
)

// NewTestWeb returns the control page's handler over c with the sim board's devices and no
// preview, for tests with a fake Controller. adminHash is the provisioned bcrypt hash ("":
// the setup code is the password); now is the clock of sessions and the login limit.
func NewTestWeb(c Controller, setupCode, adminHash string, now func() time.Time) (http.Handler, error) {
	board, err := sim.NewBoard(sim.Config{})
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	m := newDeviceMetrics()
	live := func() liveSample { return liveSample{At: now(), State: c.Status(context.Background()).State} }
	m.observe(c, live, board.Thermal)
	w := newWeb(webConfig{
		c:       c,
		auth:    newWebAuth(setupCode, func() string { return adminHash }, now, m.loginFailed),
		log:     log,
		devices: newBoardDevices(board),
		live:    live,
		logs:    newLogRing(logLines),
		metrics: m,
	})
	return w.handler(), nil
}
