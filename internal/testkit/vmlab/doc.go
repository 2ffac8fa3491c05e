// Package vmlab is the VM hardware lab: it boots Debian's amd64 kernel under
// qemu-system-x86_64 (TCG) with an initramfs it builds, so that tests run the real roombox
// binary and real kernel drivers: vivid (V4L2 capture), snd-aloop (ALSA loopback), uinput and
// evdev (input events).
//
// The pieces: OpenKernel reads the kernel `make lab-kernel` unpacked from the
// linux-image-6.1.0-NN-amd64 package and orders modules by their .modinfo dependencies (the
// package has no modules.dep); Initramfs writes a newc cpio archive (written here: the format
// is a header and padding) and copies dynamic programs with the libraries ldd lists, so the
// cgo roombox binary runs as built; Guest makes the busybox /init that mounts proc, sys,
// devtmpfs and tmp, loads the modules, runs commands with their output between markers on
// the serial console and powers off; VM.Boot runs qemu with a context, killing its process
// group when the context ends, and parses what the console printed.
//
// TestLab (in go test ./...) builds test binaries, boots once, runs them with -test.v in the
// VM and requires them to pass: the guest package's tests (tag vmlabguest, built with cgo:
// raw-ioctl checks of the drivers, the hal/linux checks, the roombox daemon with --hal sim
// and --hal linux, and that daemon in a room on a livekit-server the guest runs on loopback,
// its camera, mic and speaker checked through vivid and snd-aloop from a participant on the
// project's own client) and the hal packages' own tests that need real drivers (alsa's
// TestSndAloop). The initramfs holds $ROOMBOX_LIVEKIT_SERVER as /bin/livekit-server.
// TestLabEcho boots again for the echo path: the guest's TestRoomboxEcho runs the daemon
// with its playback looped back into its capture through snd-aloop, in a room on a
// livekit-server on the host (qemu's user-mode network; the daemon's LocalAPI relayed to
// the host, Relay), and a talker on the host measures its own speech in the box's audio with
// the echo canceller off and on. `make lab` runs both with ROOMBOX_LAB=full, adding the long
// ones. A new hardware check is a test in
// package guest, which runs in every boot, or a labSuites entry for a package's own tests;
// a suite's require names the tests that must be seen to pass, its full those kept to make
// lab.
//
// The same pieces boot arm64 (VM.Arch): qemu-system-aarch64's virt machine with Debian's
// arm64 kernel and busybox, fetched by `make lab-kernel-arm64`; AddExecutable resolves an
// arm64 program's libraries from the multiarch directories, as ldd cannot run it, and
// VM.Forwards gives the guest a user-mode network with host ports forwarded.
// TestArm64Healthz runs the cross-built roombox there and asks its /healthz.
//
// KVM is not used by default: on this machine kind /dev/kvm exists, but a guest hangs in its
// firmware (and -cpu host fails setting MSRs). ROOMBOX_LAB_ACCEL=kvm tries it elsewhere.
package vmlab
