package appliance

import (
	"context"
	"time"

	"roombox/signaling"
	"roombox/telemetry"
	"roombox/webui"
)

// sampler is the live sampler of the device: its state, the room's send statistics, the
// camera's estimate and layers, the board's temperature and the daemon's CPU time, once a
// second.
func (d *daemon) sampler() *telemetry.Sampler {
	cfg := telemetry.SamplerConfig{Now: time.Now, State: func() string { return d.Status(context.Background()).State },
		Stats: d.roomStats, Thermal: d.board.Thermal, CPU: telemetry.ProcCPUSeconds}
	if d.videoTrack != nil {
		cfg.VideoID, cfg.Video = d.videoTrack.ID(), d.layers.status
	}
	return telemetry.NewSampler(cfg)
}

// roomStats returns the send statistics of the room the device is in, nil if none.
func (d *daemon) roomStats() []signaling.TrackStats {
	if room := d.room.current(); room != nil {
		return room.Stats()
	}
	return nil
}

// webServer makes the control page on addr: the page drives the daemon through its
// control.Controller, and previews what leaves the device, exactly the tracks the room gets.
func (d *daemon) webServer(addr string, sampler *telemetry.Sampler) (*webui.Server, error) {
	code, err := d.store.SetupCode()
	if err != nil {
		return nil, err
	}
	var pm webui.PreviewMedia // a board without a camera or a mic has no such track
	if d.video != nil {
		l := d.video.Layer(d.previewLayer)
		pm.Video, pm.OnRTCP, pm.Keyframe, pm.Watching = d.preview, l.HandleRTCP, l.RequestKeyframe, d.layers.SetWatching
	}
	var meter func() webui.MicLevel
	if d.audio != nil {
		pm.Audio, meter = d.audioTrack, d.meter
	}
	web, err := webui.New(webui.Config{
		Addr: addr, Controller: d, SetupCode: code,
		AdminHash: func() string { cfg, _ := d.provisioning(); return cfg.AdminPasswordHash },
		Devices:   webui.BoardDevices(d.board), Preview: pm, Live: sampler.Latest, Meter: meter,
		Logs: d.logs, Metrics: d.metrics, Log: d.log,
	})
	if err != nil {
		return nil, err
	}
	// The setup code goes to the console log once, by design, and not into the page's log
	// tail (consoleLog is the daemon's logger before the tail was added).
	d.consoleLog.Info("control page", "url", "http://"+web.Addr()+"/", "setup_code", code)
	return web, nil
}
