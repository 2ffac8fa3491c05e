package media

// Config is what the device captures and sends: the camera's size and rate, the video and
// audio bitrates. The board's camera is opened at the size and rate (the simulated one
// renders them, a V4L2 camera picks its nearest mode), and the encoders follow.
type Config struct {
	Width, Height, FPS int
	VideoBitrate       int // bits per second
	AudioBitrate       int
}

// DefaultConfig is the media a device sends unless provisioning asks for other settings.
var DefaultConfig = Config{Width: 640, Height: 360, FPS: 30, VideoBitrate: 800_000, AudioBitrate: 32_000}
