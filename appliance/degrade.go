package appliance

import (
	"context"
	"math"
	"time"
)

// Degradation: when the camera's encoders need more of the wall time than the frames allow
// (frames then arrive late: a slow board, or one busy with something else) or the board
// runs hot, the camera first halves its frame rate, then also drops its top layer; it
// recovers a step at a time once the load has stayed low and the board cool.
type degradeStep int

const (
	stepFull     degradeStep = iota
	stepHalfRate             // every other frame encoded
	stepNoTop                // and the largest layer off
)

func (s degradeStep) String() string {
	switch s {
	case stepHalfRate:
		return "half frame rate"
	case stepNoTop:
		return "half frame rate, top layer off"
	}
	return ""
}

const (
	// degradeLoad is the share of wall time spent scaling and encoding above which frames
	// are late; recoverLoad is low enough that the step back (twice the frames, or the top
	// layer again) stays under degradeLoad.
	degradeLoad, recoverLoad = 0.85, 0.35
	// hotCelsius steps down; the board must be under coolCelsius to step back up.
	hotCelsius, coolCelsius = 80.0, 75.0
	// degradeAfter and recoverAfter are how many one-second samples in a row it takes.
	degradeAfter, recoverAfter = 3, 10
)

// degrader decides the step from one sample a second.
type degrader struct {
	step        degradeStep
	over, under int // samples in a row over the limits, and well under them
}

// next takes a second's encoder load and the board's temperature (NaN without a sensor)
// and says why the step changed, "" if it did not.
func (g *degrader) next(load, celsius float64) string {
	hot := celsius >= hotCelsius
	cool := math.IsNaN(celsius) || celsius < coolCelsius
	switch {
	case load > degradeLoad || hot:
		g.over, g.under = g.over+1, 0
	case load < recoverLoad && cool:
		g.over, g.under = 0, g.under+1
	default:
		g.over, g.under = 0, 0
	}
	switch {
	case g.over >= degradeAfter && g.step < stepNoTop:
		g.step, g.over = g.step+1, 0
		if hot {
			return "the board is hot"
		}
		return "the encoders fall behind"
	case g.under >= recoverAfter && g.step > stepFull:
		g.step, g.under = g.step-1, 0
		return "load and temperature back down"
	}
	return ""
}

// watchLoad samples the camera's encoder load and the board's temperature once a second
// and steps the camera's degradation, logging each change once.
func (d *daemon) watchLoad(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var g degrader
	busy, at := d.video.Busy(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			b := d.video.Busy()
			load := float64(b-busy) / float64(now.Sub(at))
			busy, at = b, now
			celsius := math.NaN()
			if d.board.Thermal != nil {
				if c, err := d.board.Thermal.Celsius(); err == nil {
					celsius = c
				}
			}
			why := g.next(load, celsius)
			if why == "" {
				continue
			}
			divisor := 1
			if g.step >= stepHalfRate {
				divisor = 2
			}
			if err := d.video.SetFrameRateDivisor(divisor); err != nil {
				return err
			}
			d.layers.SetDegraded(g.step)
			d.log.Info("video degradation", "step", g.step.String(), "why", why, "load", math.Round(load*100)/100, "celsius", celsius)
		}
	}
}
