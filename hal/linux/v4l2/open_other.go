//go:build !linux

package v4l2

import (
	"context"
	"fmt"
	"runtime"
)

// Nodes lists no nodes: V4L2 is Linux's.
func Nodes() []Node { return nil }

// Open reports the camera absent: V4L2 is Linux's.
func Open(ctx context.Context, cfg Config) (*Camera, error) {
	return nil, fmt.Errorf("%w: V4L2 is not available on %s", ErrNoDevice, runtime.GOOS)
}
