package lktest

import "time"

// Config is the livekit-server configuration lktest writes as YAML. The field names are the
// YAML keys of livekit-server v1.13.5 (pkg/config/config.go and mediatransportutil
// pkg/rtcconfig/config.go); the server parses its config strictly, so a wrong key makes Start
// fail rather than being ignored. Keys lktest does not model go into the Extra maps, which are
// written inline at their level.
type Config struct {
	Port          int               `yaml:"port"`
	BindAddresses []string          `yaml:"bind_addresses"`
	Development   bool              `yaml:"development"`
	Keys          map[string]string `yaml:"keys"`
	Logging       LoggingConfig     `yaml:"logging"`
	RTC           RTCConfig         `yaml:"rtc"`
	Room          RoomConfig        `yaml:"room,omitempty"`
	// Extra holds other top-level keys (redis, turn, webhook, ...).
	Extra map[string]any `yaml:",inline"`
}

// LoggingConfig is the `logging` section.
type LoggingConfig struct {
	Level     string `yaml:"level"`
	PionLevel string `yaml:"pion_level,omitempty"`
}

// RTCConfig is the `rtc` section.
type RTCConfig struct {
	TCPPort                 int       `yaml:"tcp_port"`
	UDPPort                 int       `yaml:"udp_port"`
	NodeIP                  string    `yaml:"node_ip"`
	UseExternalIP           bool      `yaml:"use_external_ip"`
	EnableLoopbackCandidate bool      `yaml:"enable_loopback_candidate"`
	IPs                     IPsConfig `yaml:"ips,omitempty"`
	// Extra holds other rtc keys (force_tcp, congestion_control, ...).
	Extra map[string]any `yaml:",inline"`
}

// IPsConfig is `rtc.ips`: CIDRs the server may bind its ICE UDP sockets to and advertise.
type IPsConfig struct {
	Includes []string `yaml:"includes,omitempty"`
	Excludes []string `yaml:"excludes,omitempty"`
}

// RoomConfig is the `room` section. Zero values are omitted, so the server defaults apply
// (empty_timeout 300 s, departure_timeout 20 s, enable_remote_unmute false, auto_create true).
type RoomConfig struct {
	EnableRemoteUnmute bool   `yaml:"enable_remote_unmute,omitempty"`
	EmptyTimeout       uint32 `yaml:"empty_timeout,omitempty"`
	DepartureTimeout   uint32 `yaml:"departure_timeout,omitempty"`
	MaxParticipants    uint32 `yaml:"max_participants,omitempty"`
	// Extra holds other room keys (enabled_codecs, playout_delay, ...).
	Extra map[string]any `yaml:",inline"`
}

// Option configures Start.
type Option func(*options)

type options struct {
	hooks        []func(*Config)
	startTimeout time.Duration
	binary       string
}

// WithConfig registers a hook that edits the generated config after lktest has filled in the
// ports and defaults. Hooks run again with fresh ports if Start has to retry because a port
// was taken, so they must only set values, not accumulate.
func WithConfig(hook func(*Config)) Option {
	return func(o *options) { o.hooks = append(o.hooks, hook) }
}

// WithRoom registers a hook that edits the `room` section, e.g.
// WithRoom(func(r *RoomConfig) { r.EnableRemoteUnmute = true; r.EmptyTimeout = 5 }).
func WithRoom(hook func(*RoomConfig)) Option {
	return WithConfig(func(c *Config) { hook(&c.Room) })
}

// WithLogLevel sets logging.level (default "info").
func WithLogLevel(level string) Option {
	return WithConfig(func(c *Config) { c.Logging.Level = level })
}

// WithStartTimeout bounds how long Start and Restart wait for the server to answer
// (default 30 s).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) { o.startTimeout = d }
}

// WithBinary overrides the livekit-server binary (default: $ROOMBOX_LIVEKIT_SERVER, else
// <repo root>/bin/livekit-server).
func WithBinary(path string) Option {
	return func(o *options) { o.binary = path }
}

func defaultConfig(httpPort, rtcUDPPort int) *Config {
	return &Config{
		Port:          httpPort,
		BindAddresses: []string{"127.0.0.1"},
		// development only adds pprof and /debug/rooms on the HTTP port and silences the
		// "secret too short" warning; keys and bind addresses are explicit below.
		Development: true,
		Keys:        map[string]string{APIKey: APISecret},
		Logging:     LoggingConfig{Level: "info"},
		RTC: RTCConfig{
			// ICE over UDP only: livekit binds rtc.tcp_port on every address, and 0 turns
			// it off, so the server listens on loopback alone. A test may set a port.
			TCPPort:                 0,
			UDPPort:                 rtcUDPPort,
			NodeIP:                  "127.0.0.1",
			UseExternalIP:           false,
			EnableLoopbackCandidate: true,
			// Without this the ICE UDP port is bound on every interface address.
			IPs: IPsConfig{Includes: []string{"127.0.0.1/32"}},
		},
	}
}
