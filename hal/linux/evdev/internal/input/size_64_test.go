//go:build amd64 || arm64

package input

// struct input_event is 24 bytes on 64-bit: a compile error (negative array length) here,
// caught by `GOARCH=... go vet`, if the layout is wrong.
var _ = [1]struct{}{}[Size-24]
