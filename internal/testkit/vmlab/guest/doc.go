// Package guest holds the VM lab's guest checks: tests built with the vmlabguest tag into a
// test binary that runs inside the lab VM (internal/testkit/vmlab TestLab), as root, against the real
// kernel drivers the VM loads: vivid (/dev/video*), snd-aloop (/dev/snd/*), uinput and evdev
// (/dev/uinput, /dev/input/event*), with the roombox binary ($ROOMBOX_BIN) and
// livekit-server ($ROOMBOX_LIVEKIT_SERVER, which internal/testkit/lktest runs) beside them. They need
// that VM, so they are not built without the tag; the host test compiles and runs them.
//
// Figures (frame rate, CPU per frame) are logged as "figure: NAME=VALUE UNIT" lines, which
// the host test reports; nothing asserts them.
package guest
