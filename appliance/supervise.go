package appliance

import (
	"context"
	"fmt"
	"roombox/control"
	"sync/atomic"
	"time"

	systemd "github.com/coreos/go-systemd/v22/daemon"

	"roombox/hal"
	"roombox/media"
)

// The daemon speaks systemd's notify protocol (systemd/roombox.service is Type=notify with
// WatchdogSec=): READY=1 once the board, the stored state and both listeners are up, STATUS=
// on every state change, WATCHDOG=1 from the main loop while the daemon is healthy, and
// STOPPING=1 when it shuts down. Without NOTIFY_SOCKET (not under systemd, or a test) every
// message is a no-op.

// encodeStall is how long one encoder call may run before the daemon counts itself stuck
// and stops petting the watchdog. A frame's encode takes milliseconds (33 ms is a whole
// frame period at 30 fps); a call still running after 10 s is a wedged hardware encoder
// (an m2m ioctl that never completes) or a hung library, which only a restart clears.
// Device waits (a camera or mic being unplugged and reopened) are not timed: the hal rides
// those out, and restarting would not bring the device back any sooner.
const encodeStall = 10 * time.Second

// notify sends one notify-protocol message to systemd; a failure is logged, never fatal:
// the daemon serves the room whether or not systemd hears it.
func (d *daemon) notify(state string) {
	if _, err := systemd.SdNotify(false, state); err != nil {
		d.log.Warn("systemd notify", "state", state, "err", err)
	}
}

// notifyState tells systemd the device's state (systemctl status shows it).
func (d *daemon) notifyState(s control.State, room string) {
	line := s.String()
	if room != "" {
		line += " room=" + room
	}
	d.notify("STATUS=" + line)
}

// supervise is the daemon's main loop. It returns nil when ctx ends, or the first error a
// component reports. Under systemd's watchdog (WATCHDOG_USEC) it pets it every half
// interval, and only while healthy says so: a loop that is stuck, or that finds the daemon
// stuck, stays silent and systemd kills and restarts the daemon (SIGABRT first, so the Go
// runtime dumps every goroutine's stack to the journal).
func (d *daemon) supervise(ctx context.Context, errs <-chan error, stall <-chan struct{}) error {
	interval, err := systemd.SdWatchdogEnabled(false)
	if err != nil {
		d.log.Warn("systemd watchdog", "err", err)
	}
	var pet <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		pet = t.C
		d.log.Info("systemd watchdog", "interval", interval)
	}
	var sick error // the last failed check, logged once per episode
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			d.log.Error("stopping", "err", err)
			return err
		case <-stall:
			<-ctx.Done() // a stuck main loop, for tests: it neither pets nor watches errs
			return nil
		case <-pet:
			err := d.healthy(ctx, time.Now())
			switch {
			case err == nil && sick != nil:
				d.log.Info("healthy again; petting the systemd watchdog")
			case err != nil && sick == nil:
				d.log.Error("unhealthy; not petting the systemd watchdog", "err", err)
			}
			if sick = err; err == nil {
				d.notify(systemd.SdNotifyWatchdog)
			}
		}
	}
}

// healthy is what a watchdog pet vouches for: the control path is not deadlocked (control.Status
// takes the daemon's and the room link's locks; a deadlock there blocks this call, and so
// the loop) and no encoder call has been running longer than encodeStall.
func (d *daemon) healthy(ctx context.Context, now time.Time) error {
	d.Status(ctx)
	for _, s := range d.steps {
		if busy := s.running(now); busy > d.encodeStall {
			return fmt.Errorf("%s: one call running for %v", s.name, busy.Round(time.Millisecond))
		}
	}
	return nil
}

// stepTimer times the calls of one pipeline step that should never block for long.
type stepTimer struct {
	name  string
	since atomic.Int64 // the running call's start in Unix nanoseconds; 0 between calls
}

func (s *stepTimer) start() { s.since.Store(time.Now().UnixNano()) }
func (s *stepTimer) done()  { s.since.Store(0) }

// running is how long the current call has been running at now; 0 between calls.
func (s *stepTimer) running(now time.Time) time.Duration {
	if at := s.since.Load(); at != 0 {
		return now.Sub(time.Unix(0, at))
	}
	return 0
}

// timedVideoEncoder is a video encoder whose Encode calls healthy can see.
type timedVideoEncoder struct {
	hal.VideoEncoder
	t *stepTimer
}

func (e timedVideoEncoder) Encode(f *hal.Frame, forceKey bool) (hal.EncodedFrame, error) {
	e.t.start()
	defer e.t.done()
	return e.VideoEncoder.Encode(f, forceKey)
}

// timedAudioEncoder is the Opus encoder, whose Encode calls healthy can see; its tuning
// (media.EncoderTuner) shows through.
type timedAudioEncoder struct {
	*media.OpusEncoder
	t *stepTimer
}

func (e timedAudioEncoder) Encode(pcm []int16) ([]byte, error) {
	e.t.start()
	defer e.t.done()
	return e.OpusEncoder.Encode(pcm)
}
