package sim

import (
	"math"
	"time"
)

// Thermal is a simulated SoC temperature sensor: about 48 °C, drifting a few degrees over
// minutes as a box warming up and cooling with the room's air would, so charts move.
type Thermal struct {
	clock Clock
}

// thermalPeriod is how long one warm-cool cycle of the simulated sensor takes.
const thermalPeriod = 10 * time.Minute

// Celsius returns the simulated temperature at the clock's current time.
func (t *Thermal) Celsius() (float64, error) {
	phase := float64(t.clock.Now().UnixNano()%int64(thermalPeriod)) / float64(thermalPeriod)
	return 48 + 3*math.Sin(2*math.Pi*phase) + 0.5*math.Sin(2*math.Pi*7*phase), nil
}
