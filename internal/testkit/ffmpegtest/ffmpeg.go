// Package ffmpegtest decodes H.264 with ffmpeg, a real decoder independent of ours, for
// tests. `make deps` installs ffmpeg; a missing one fails the test rather than skipping it.
package ffmpegtest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"time"
)

// DecodeGray decodes an Annex-B H.264 stream of w x h pictures into their 8-bit luma planes.
func DecodeGray(stream []byte, w, h int) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "h264", "-i", "pipe:0", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1")
	cmd.Stdin = bytes.NewReader(stream)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ffmpegtest: ffmpeg (make deps installs it): %w: %s", err, stderr.String())
	}
	size := w * h
	if len(out) == 0 || len(out)%size != 0 {
		return nil, fmt.Errorf("ffmpegtest: ffmpeg produced %d bytes, not whole %dx%d pictures", len(out), w, h)
	}
	var frames [][]byte
	for len(out) > 0 {
		frames, out = append(frames, out[:size]), out[size:]
	}
	return frames, nil
}
