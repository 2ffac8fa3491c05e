package v4l2

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"roombox/hal"
)

// Report is what CheckCapture saw.
type Report struct {
	Node    Node
	Mode    Mode
	Frames  int
	Dropped uint64
	Elapsed time.Duration // from the first frame's capture to the last's
	Bars    [8]int        // luma of the last frame's bars
}

// FPS is the measured frame rate.
func (r Report) FPS() float64 {
	if r.Frames < 2 || r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Frames-1) / r.Elapsed.Seconds()
}

func (r Report) String() string {
	return fmt.Sprintf("%s (%s, %s): %v, %d frames at %.1f fps, %d dropped, bars %v",
		r.Node.Path, r.Node.Driver, r.Node.Card, r.Mode, r.Frames, r.FPS(), r.Dropped, r.Bars)
}

// CheckCapture opens the camera cfg names, reads n (at least 2) frames and checks them
// against vivid's default picture: every frame has the negotiated size, Seq counts up by one,
// Captured never goes back, every frame shows the colour bars, and the last frame's OSD has
// moved on from the first's (CheckAdvanced). The VM lab runs it against vivid, once per pixel
// format (cfg.Format NV12, YUYV), with the wall clock.
func CheckCapture(ctx context.Context, cfg Config, n int) (Report, error) {
	if n < 2 {
		return Report{}, fmt.Errorf("v4l2: check: need at least 2 frames, not %d", n)
	}
	cam, err := Open(ctx, cfg)
	if err != nil {
		return Report{}, err
	}
	defer cam.Close()
	r := Report{Node: cam.Node(), Mode: cam.Mode()}
	var first, f hal.Frame
	for i := range n {
		if err := cam.ReadFrame(ctx, &f); err != nil {
			return r, fmt.Errorf("v4l2: check: frame %d: %w", i, err)
		}
		r.Frames, r.Dropped = i+1, cam.Dropped()
		if f.Width != r.Mode.Width || f.Height != r.Mode.Height {
			return r, fmt.Errorf("v4l2: check: frame %d is %dx%d, mode %v", i, f.Width, f.Height, r.Mode)
		}
		if f.Seq != uint64(i) {
			return r, fmt.Errorf("v4l2: check: frame %d has Seq %d", i, f.Seq)
		}
		if r.Bars, err = CheckColourBars(&f); err != nil {
			return r, fmt.Errorf("v4l2: check: frame %d: %w", i, err)
		}
		if i == 0 {
			first.Ensure(f.Width, f.Height)
			copy(first.Y, f.Y)
			first.Captured = f.Captured
			continue
		}
		if f.Captured.Before(first.Captured.Add(r.Elapsed)) {
			return r, fmt.Errorf("v4l2: check: frame %d captured before frame %d", i, i-1)
		}
		r.Elapsed = f.Captured.Sub(first.Captured)
	}
	if err := CheckAdvanced(&first, &f); err != nil {
		return r, fmt.Errorf("v4l2: check: frame 0 to %d: %w", n-1, err)
	}
	return r, nil
}

// ReplugReport is what CheckReplug saw.
type ReplugReport struct {
	Before, After Mode    // of the camera before the unplug and after the replug
	Events        []Event // the Reopener's, in order
}

func (r ReplugReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v, unplugged, replugged, %v:", r.Before, r.After)
	for _, e := range r.Events {
		fmt.Fprintf(&b, " %v", e.Kind)
		if e.Err != nil {
			fmt.Fprintf(&b, "(%v)", e.Err)
		}
	}
	return b.String()
}

// CheckReplug proves "unplug -> event and retry, replug -> recovered" on vivid. It reads
// frames through a Reopener and presses vivid's "Disconnect" control, vivid's simulated USB
// unplug: the node answers ENODEV from then on, until its last open file is closed, when
// vivid registers it again by itself. So CheckReplug holds a second descriptor of the node
// across the unplug: the Reopener's attempts fail while it is held (OpenFailed events, each
// retried after its backoff), and closing it after unplugged is the replug. It then expects
// Lost (ErrUnplugged), at least one OpenFailed, Reopened and colour bars again, all within
// one ReadFrame that waited across the unplug.
func CheckReplug(ctx context.Context, cfg Config, unplugged time.Duration) (ReplugReport, error) {
	var rep ReplugReport
	cam, err := Open(ctx, cfg)
	if err != nil {
		return rep, err
	}
	rep.Before = cam.Mode()
	path := cam.Path()
	events := make(chan Event, 64)
	r := NewReopener(cam, func(ctx context.Context, _ hal.VideoFormat) (hal.Camera, error) { return Open(ctx, cfg) },
		ReopenConfig{OnEvent: func(e Event) {
			select {
			case events <- e:
			default: // a stuck reopen loop must not block on a full report
			}
		}})
	defer r.Close()

	var f hal.Frame
	for i := range 3 {
		if err := r.ReadFrame(ctx, &f); err != nil {
			return rep, fmt.Errorf("v4l2: replug: frame %d: %w", i, err)
		}
	}
	holder, err := openNode(path)
	if err != nil {
		return rep, err
	}
	defer func() {
		if holder >= 0 {
			unix.Close(holder)
		}
	}()
	if err := SetControl(path, "Disconnect", 1); err != nil {
		return rep, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	read := make(chan error, 1)
	go func() { read <- r.ReadFrame(ctx, &f) }()
	defer func() {
		if read != nil {
			cancel()
			<-read
		}
	}()
	next := func(want EventKind) error {
		for {
			select {
			case e := <-events:
				rep.Events = append(rep.Events, e)
				if e.Kind == want {
					return nil
				}
			case err := <-read:
				read = nil
				return fmt.Errorf("v4l2: replug: waiting for %v, the read ended: %v", want, err)
			case <-ctx.Done():
				return fmt.Errorf("v4l2: replug: waiting for %v: %w", want, ctx.Err())
			}
		}
	}
	if err := next(Lost); err != nil {
		return rep, err
	}
	if !errors.Is(rep.Events[len(rep.Events)-1].Err, ErrUnplugged) {
		return rep, fmt.Errorf("v4l2: replug: lost for another reason: %w", rep.Events[len(rep.Events)-1].Err)
	}
	select {
	case <-time.After(unplugged):
	case <-ctx.Done():
		return rep, fmt.Errorf("v4l2: replug: %w", ctx.Err())
	}
	unix.Close(holder) // the last user of the disconnected device: vivid reconnects it
	holder = -1
	if err := next(Reopened); err != nil {
		return rep, err
	}
	if !slices.ContainsFunc(rep.Events, func(e Event) bool { return e.Kind == OpenFailed }) {
		return rep, fmt.Errorf("v4l2: replug: reopened without a failed attempt while unplugged")
	}
	err = <-read
	read = nil
	if err != nil {
		return rep, fmt.Errorf("v4l2: replug: first frame after the replug: %w", err)
	}
	if c, ok := r.Current().(*Camera); ok {
		rep.After = c.Mode()
	}
	if _, err := CheckColourBars(&f); err != nil {
		return rep, fmt.Errorf("v4l2: replug: first frame after the replug: %w", err)
	}
	return rep, nil
}
