package ffmpegtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"
)

// Stream is what ffprobe reads from an H.264 stream's sequence parameter set.
type Stream struct {
	Profile       string // e.g. "Constrained Baseline"
	Level         int    // level_idc: 31 for level 3.1
	Width, Height int    // the cropped picture size
}

// Probe reads the first video stream of an Annex-B H.264 stream with ffprobe (part of
// ffmpeg): an independent reading of the SPS an encoder wrote.
func Probe(stream []byte) (Stream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffprobe", "-hide_banner", "-loglevel", "error", "-f", "h264", "-i", "pipe:0",
		"-select_streams", "v:0", "-show_entries", "stream=profile,level,width,height", "-of", "json")
	cmd.Stdin = bytes.NewReader(stream)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Stream{}, fmt.Errorf("ffmpegtest: ffprobe (make deps installs ffmpeg): %w: %s", err, stderr.String())
	}
	var r struct{ Streams []Stream }
	if err := json.Unmarshal(out, &r); err != nil {
		return Stream{}, fmt.Errorf("ffmpegtest: ffprobe's answer: %w", err)
	}
	if len(r.Streams) == 0 {
		return Stream{}, fmt.Errorf("ffmpegtest: ffprobe found no video stream")
	}
	return r.Streams[0], nil
}
