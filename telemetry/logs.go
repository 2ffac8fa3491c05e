package telemetry

import (
	"bytes"
	"log/slog"
	"sync"
)

// logLines is how many log lines the control page can show.
const LogLines = 500

// LogRing keeps the last lines the daemon logged, for GET /api/logs. It is an io.Writer for
// a slog.TextHandler, which writes each record with one Write call.
type LogRing struct {
	mu    sync.Mutex
	lines []string // a ring: next is the oldest once full
	next  int
	full  bool
}

func NewLogRing(n int) *LogRing { return &LogRing{lines: make([]string, n)} }

func (r *LogRing) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	r.full = r.full || r.next == 0
	return len(p), nil
}

// Lines returns the kept lines, oldest first.
func (r *LogRing) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.lines[:r.next]...)
	}
	return append(append([]string(nil), r.lines[r.next:]...), r.lines[:r.next]...)
}

// wrap returns a logger that logs to log's handler and into the ring.
func (r *LogRing) Wrap(log *slog.Logger) *slog.Logger {
	return slog.New(slog.NewMultiHandler(log.Handler(), slog.NewTextHandler(r, nil)))
}
