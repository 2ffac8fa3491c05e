//go:build !linux

package m2m

// devicePaths matches nothing off Linux: Find reports ErrNotFound.
const devicePaths = ""

// OpenFile fails off Linux: V4L2 is a Linux interface.
func OpenFile(path string) (Device, error) { return nil, ErrNotFound }
