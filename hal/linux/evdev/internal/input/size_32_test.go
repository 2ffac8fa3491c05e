//go:build arm || 386

package input

// struct input_event is 16 bytes on 32-bit (armv7): a compile error here, caught by
// `GOARCH=arm go vet`, if the layout is wrong.
var _ = [1]struct{}{}[Size-16]
