# roombox developer entry points. See README.md.
#   make run    build everything, start a local LiveKit server and the simulated box
#   make test   go test ./... against the real livekit-server, then make lint
#   make test-browser   only test/browser (chromium against the control page)
#   make lab    the whole VM hardware lab (internal/testkit/vmlab: real kernel drivers under qemu)

SHELL := /bin/bash
GO    ?= go

BIN            := $(CURDIR)/bin
ROOMBOX        := $(BIN)/roombox
LIVEKIT_SERVER := $(BIN)/livekit-server
LKPROBE        := $(BIN)/lkprobe

# Debian packages the build needs (cgo: gcc, opus, x264, libyuv (simulcast's scaler), alsa-lib; g++ and WebRTC's
# AudioProcessing 0.3 for media/apm's C++ shim; ffmpeg for media tests; espeak-ng and sox make
# the speech media/apm's tests play through a simulated room; iproute2 + nftables for the
# impaired-network lab, internal/testkit/netlab; redis-server for multi-node livekit tests, which start
# their own on a free loopback port; qemu-user-static runs the arm64 and armv7 test binaries of
# test-cross; qemu and a static busybox for the VM hardware lab, internal/testkit/vmlab).
DEB_PACKAGES := gcc g++ libc6-dev pkg-config libopus-dev libopusfile-dev libx264-dev libyuv-dev libasound2-dev \
                libwebrtc-audio-processing-dev ffmpeg espeak-ng sox \
                iproute2 nftables redis-server qemu-user-static qemu-system-x86 busybox-static
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# apt-get update tolerating an index that fails to verify (see cross-deps: once armhf is
# added, this mirror's bookworm-security armhf index always does); the install that follows
# fails loudly if what it needs is missing.
APT_UPDATE := { $(SUDO) apt-get -o DPkg::Lock::Timeout=600 update || echo "apt-get update: an index failed (above); using the rest"; }

# The VM lab's kernel: Debian's linux-image-amd64, unpacked by lab-kernel.
LAB_KERNEL := $(CURDIR)/.cache/lab/kernel

TEST_ENV := ROOMBOX_LIVEKIT_SERVER=$(LIVEKIT_SERVER) ROOMBOX_BIN=$(ROOMBOX) ROOMBOX_LKPROBE=$(LKPROBE) ROOMBOX_LAB_KERNEL=$(LAB_KERNEL) \
            ROOMBOX_BIN_ARM64=$(BIN)/roombox-linux-arm64 ROOMBOX_LAB_KERNEL_ARM64=$(CURDIR)/.cache/lab/kernel-arm64
TEST_TIMEOUT ?= 20m

.PHONY: all deps systemd-deps cross-deps browser-deps npm-deps stress-deps livekit lkprobe lab-kernel lab-kernel-arm64 build cross test \
        test-browser test-cross test-arm64 test-stress soak lab lab-arm64 bench bench-gst bench-mem lint run clean

all: build

# $(call apt-install-missing,PACKAGES): installs only what dpkg does not already report as
# installed, with apt-get update first only then; a no-op (one dpkg-query per package) when
# everything is present, so it is cheap to depend on.
define apt-install-missing
@missing=$$(for p in $(1); do \
	dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' || echo "$$p"; \
done); \
if [ -n "$$missing" ]; then \
	echo "$@: installing" $$missing; \
	$(APT_UPDATE) && \
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
fi
endef

deps:
	$(call apt-install-missing,$(DEB_PACKAGES))

# stress-ng for make test-stress (loads both cores while the timing-sensitive suites run).
stress-deps:
	$(call apt-install-missing,stress-ng)

# systemd-analyze, systemd-sysusers and systemd-tmpfiles for the unit's tests (systemd/):
# Debian's systemd package, checked with one dpkg query. Another apt run holding the dpkg
# lock is waited for (up to 10 minutes) rather than failing the build.
systemd-deps:
	@dpkg -s systemd >/dev/null 2>&1 && command -v systemd-analyze >/dev/null || { \
		echo "systemd-deps: installing systemd"; \
		for try in $$(seq 60); do \
			$(APT_UPDATE) && \
			DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=10 install -y --no-install-recommends systemd && exit 0; \
			echo "systemd-deps: apt failed (dpkg lock held?); retrying in 10 s"; sleep 10; \
		done; exit 1; }

# The cgo cross builds (make cross, make test-arm64) and the arm64 VM (make lab-arm64) through
# Debian multiarch: the arm64 and armhf architectures, the cross compilers (which bring the
# cross libc6-dev the linker uses), and the libraries roombox links for both. libc6:arm64
# gives qemu-aarch64-static the loader /lib/ld-linux-aarch64.so.1 the arm64 test binaries
# name; qemu-system-arm has qemu-system-aarch64. Like deps: one dpkg-query when everything is
# there, and apt-get update only when something is missing.
# Multi-Arch: same packages (libssl3, libc6, ...) must be at one version on every
# architecture. The point release (-t CODENAME) has them for all three; on this machine kind
# the mirror's bookworm-security armhf index does not verify (a stale Packages.xz), so apt
# discards that suite's new indexes, and security versions exist for amd64 only: taking them
# would leave arm64/armhf nothing to match.
CODENAME     := $(shell . /etc/os-release 2>/dev/null && echo $$VERSION_CODENAME)
CROSS_ARCHES := arm64 armhf
# libstdc++6: the C++ runtime media/apm's shim and libwebrtc_audio_processing need under
# qemu-user (the cross g++ links against its own copy, the multiarch one is what runs).
CROSS_LIBS   := libc6 libstdc++6 libopus-dev libopusfile-dev libx264-dev libyuv-dev libasound2-dev libwebrtc-audio-processing-dev
CROSS_PACKAGES := gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf g++-aarch64-linux-gnu g++-arm-linux-gnueabihf \
                  libc6-dev-arm64-cross libc6-dev-armhf-cross qemu-system-arm \
                  $(foreach a,$(CROSS_ARCHES),$(addsuffix :$(a),$(CROSS_LIBS)))
cross-deps: deps
	@missing=$$(for p in $(CROSS_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' || echo "$$p"; \
	done); \
	if [ -n "$$missing" ]; then \
		for a in $(CROSS_ARCHES); do \
			dpkg --print-foreign-architectures | grep -qx "$$a" || $(SUDO) dpkg --add-architecture "$$a" || exit 1; \
		done; \
		echo "cross-deps: installing" $$missing; \
		$(APT_UPDATE) && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
			-t $(CODENAME) $$missing; \
	fi

# Browser tests (test/browser): Debian's chromium at /usr/bin/chromium, and Node.js with npm
# to run playwright-core and to serve livekit-client. A machine that already has node and
# npm (Debian's, or another Node.js package that bundles npm) keeps them; otherwise Debian's
# nodejs and npm are installed. Checked by path and command, so a no-op when present.
browser-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "browser-deps: installing" $$missing; \
		$(APT_UPDATE) && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

# playwright-core and livekit-client, pinned in test/browser/package-lock.json; `npm ci`
# runs only when node_modules is missing or older than the lock file.
BROWSER_DIR := test/browser
npm-deps: $(BROWSER_DIR)/node_modules/.package-lock.json

$(BROWSER_DIR)/node_modules/.package-lock.json: $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json | browser-deps
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund
	@touch $@

# The real SFU, rebuilt only when the pinned module changes.
livekit: $(LIVEKIT_SERVER)

$(LIVEKIT_SERVER): tools/livekit/go.mod tools/livekit/go.sum
	@mkdir -p $(BIN)
	cd tools/livekit && GOWORK=off $(GO) build -trimpath -o $@ github.com/livekit/livekit-server/cmd/server
	@touch $@ # go build leaves an up-to-date binary's mtime alone

# The independent LiveKit client the tests run (LiveKit's Go SDK in its own module, so its pion
# and protocol versions never move the firmware's), rebuilt only when the module changes.
LKPROBE_SRC := $(wildcard tools/lkprobe/*.go)
lkprobe: $(LKPROBE)

$(LKPROBE): tools/lkprobe/go.mod tools/lkprobe/go.sum $(LKPROBE_SRC)
	@mkdir -p $(BIN)
	cd tools/lkprobe && GOWORK=off $(GO) build -trimpath -o $@ .
	@touch $@

# The kernel the VM lab boots: the linux-image-6.1.0-NN-amd64 package that linux-image-amd64
# currently depends on, fetched with apt-get download and cut down to what the lab uses (the
# image, and the media, sound, uinput, evdev and virtio network modules: ~70 MB of ~400). A marker names the
# package and the paths unpacked, so this is one apt-cache query when it is current; a new ABI
# or path list replaces it. With apt's lists unreadable it keeps whatever kernel is there.
LAB_KERNEL_PATHS := './boot/vmlinuz-*' './boot/config-*' './lib/modules/*/kernel/drivers/media' \
                    './lib/modules/*/kernel/sound' './lib/modules/*/kernel/drivers/input/misc/uinput.ko' \
                    './lib/modules/*/kernel/drivers/input/evdev.ko' './lib/modules/*/kernel/drivers/virtio' \
                    './lib/modules/*/kernel/drivers/net/virtio_net.ko' './lib/modules/*/kernel/drivers/net/net_failover.ko' \
                    './lib/modules/*/kernel/net/core/failover.ko'
# The arm64 VM's (make lab-arm64): Debian's arm64 kernel with the virtio-mmio transport and
# virtio-net as modules (the virt machine's network card), and busybox-static:arm64's busybox
# for its /init (busybox-static does not co-install across architectures: unpacked, not
# installed).
LAB_KERNEL_ARM64 := $(CURDIR)/.cache/lab/kernel-arm64
LAB_KERNEL_ARM64_PATHS := './boot/vmlinuz-*' './boot/config-*' './lib/modules/*/kernel/drivers/virtio/virtio_mmio.ko' \
                          './lib/modules/*/kernel/drivers/net/virtio_net.ko' './lib/modules/*/kernel/drivers/net/net_failover.ko' \
                          './lib/modules/*/kernel/net/core/failover.ko'

# $(call fetch-kernel,DIR,META-PACKAGE,PATHS[,PACKAGE PATHS...]): unpack PATHS of the kernel
# package META-PACKAGE depends on into DIR, and the PATHS of one more package if given.
define fetch-kernel
@pkg=$$(apt-cache depends $(2) 2>/dev/null | awk '$$1 == "Depends:" && $$2 ~ /^linux-image-/ {print $$2; exit}'); \
if [ -z "$$pkg" ] && ls $(1)/.package-* >/dev/null 2>&1; then exit 0; fi; \
if [ -z "$$pkg" ]; then \
	$(APT_UPDATE) >/dev/null; \
	pkg=$$(apt-cache depends $(2) | awk '$$1 == "Depends:" && $$2 ~ /^linux-image-/ {print $$2; exit}'); \
fi; \
[ -n "$$pkg" ] || { echo "$@: apt knows no $(2)"; exit 1; }; \
want="$(strip $(3) $(4))"; \
[ "$$(cat $(1)/.package-$$pkg 2>/dev/null)" = "$$want" ] && exit 0; \
echo "$@: fetching $$pkg $(firstword $(4))"; \
tmp=$(1).tmp; rm -rf $$tmp && mkdir -p $$tmp/deb $$tmp/extra && \
( cd $$tmp/deb && apt-get download -o APT::Sandbox::User=root $$pkg ) && \
dpkg-deb --fsys-tarfile $$tmp/deb/*.deb | tar -x --wildcards -C $$tmp $(3) && \
$(if $(4),( cd $$tmp/extra && apt-get download -o APT::Sandbox::User=root $(firstword $(4)) ) && \
dpkg-deb --fsys-tarfile $$tmp/extra/*.deb | tar -x -C $$tmp $(wordlist 2,99,$(4)) &&) \
rm -rf $$tmp/deb $$tmp/extra && printf '%s\n' "$$want" > $$tmp/.package-$$pkg && \
rm -rf $(1) && mv $$tmp $(1)
endef

lab-kernel: deps
	$(call fetch-kernel,$(LAB_KERNEL),linux-image-amd64,$(LAB_KERNEL_PATHS))

lab-kernel-arm64: cross-deps
	$(call fetch-kernel,$(LAB_KERNEL_ARM64),linux-image-arm64:arm64,$(LAB_KERNEL_ARM64_PATHS),busybox-static:arm64 ./bin/busybox)

# The version every build stamps into main.version, which `roombox version` prints.
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

build: deps
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(ROOMBOX) ./cmd/roombox
	@test "$$($(ROOMBOX) version)" = "roombox $(VERSION)" || { echo "build: $(ROOMBOX) does not print version $(VERSION)"; exit 1; }

# The device binaries: linux/arm64 and linux/arm (armv7, hard float), cgo against the
# multiarch libraries of cross-deps (pkg-config reads only that architecture's .pc files),
# stripped, version stamped. Each must run under qemu-user and print its version; no -L for
# qemu: the multiarch libc6 is at the default paths (and -L /usr/aarch64-linux-gnu hangs, see
# DESIGN), timeout -s KILL in case anything does.
CROSS_ENV_arm64 := CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ PKG_CONFIG_PATH= \
                   PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
CROSS_ENV_armv7 := CGO_ENABLED=1 GOOS=linux GOARCH=arm GOARM=7 CC=arm-linux-gnueabihf-gcc CXX=arm-linux-gnueabihf-g++ PKG_CONFIG_PATH= \
                   PKG_CONFIG_LIBDIR=/usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig
QEMU_arm64 := timeout -s KILL 60 qemu-aarch64-static
QEMU_armv7 := timeout -s KILL 60 qemu-arm-static

# $(call cross-build,ARCH): bin/roombox-linux-ARCH, checked.
define cross-build
$(CROSS_ENV_$(1)) $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/roombox-linux-$(1) ./cmd/roombox
@got=$$($(QEMU_$(1)) $(BIN)/roombox-linux-$(1) version); [ "$$got" = "roombox $(VERSION)" ] || \
	{ echo "cross: bin/roombox-linux-$(1) version printed '$$got', want 'roombox $(VERSION)'"; exit 1; }
endef

cross: cross-deps
	@mkdir -p $(BIN)
	$(call cross-build,arm64)
	$(call cross-build,armv7)
	@stat -c '%n %s' $(BIN)/roombox-linux-arm64 $(BIN)/roombox-linux-armv7 | \
		awk '{n=split($$1, p, "/"); printf "cross: bin/%s %.1f MB (%d bytes)\n", p[n], $$2/1e6, $$2}'

# The VM lab runs after the rest, alone: its guests run under TCG and would otherwise take
# the CPU the timing-sensitive room and audio tests need, and theirs.
test: deps systemd-deps browser-deps npm-deps livekit lkprobe lab-kernel lab-kernel-arm64 build cross
	$(TEST_ENV) $(GO) test -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/internal/testkit/vmlab$$')
	$(TEST_ENV) $(GO) test -timeout $(TEST_TIMEOUT) ./internal/testkit/vmlab
	$(MAKE) --no-print-directory test-cross test-arm64 lint

# Only the browser tests (test/browser), with all they need; screenshots in artifacts/browser.
test-browser: deps browser-deps npm-deps livekit build
	$(TEST_ENV) $(GO) test -count=1 -v -timeout $(TEST_TIMEOUT) ./test/browser

# The pure-Go hardware packages' tests (struct layouts, ioctl numbers) built for arm64 and
# armv7 and run under qemu-user; part of make test.
CROSS_PKGS := ./hal/linux/... ./hal/button/... ./internal/v4l2uapi
test-cross: deps
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static $(CROSS_PKGS)
	CGO_ENABLED=0 GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm-static $(CROSS_PKGS)

# The cgo packages' tests built for arm64 and run under qemu-user, with livekit-server running
# natively (signaling's tests reach it over loopback): all of them, ~3 min here; part of make
# test. media/apm's run the arm64 build of WebRTC's AudioProcessing (its NEON code) through
# the same simulated room, calling the host's espeak-ng and sox. Each test binary is killed
# after 10 min should qemu hang (see cross).
ARM64_PKGS := ./hal/sim/... ./media/... ./signaling
test-arm64: cross-deps livekit
	$(CROSS_ENV_arm64) ROOMBOX_LIVEKIT_SERVER=$(LIVEKIT_SERVER) \
		$(GO) test -count=1 -timeout 10m -exec "timeout -s KILL 660 qemu-aarch64-static" $(ARM64_PKGS)

# Only the arm64 VM: the cross-built roombox on Debian's arm64 kernel under
# qemu-system-aarch64, answering /healthz through a forwarded port (~7 s; in make test too).
lab-arm64: lab-kernel-arm64 cross
	$(TEST_ENV) $(GO) test -count=1 -v -run '^TestArm64Healthz$$' -timeout 5m ./internal/testkit/vmlab

# The whole VM lab: internal/testkit/vmlab's TestLab and TestLabEcho with the guest's long checks
# too (every vivid size, longer capture runs, room tones and echo measures). make test runs the
# same boots with the short set. livekit-server goes into the VM for the room check and runs on
# the host for the echo check; deps brings espeak-ng and sox, which make its talker's speech.
lab: deps lab-kernel livekit build
	$(TEST_ENV) ROOMBOX_LAB=full $(GO) test -count=1 -v -run '^TestLab(Echo)?$$' -timeout $(TEST_TIMEOUT) ./internal/testkit/vmlab

# The timing-sensitive suites STRESS_N times (default 10) with both cores loaded by stress-ng,
# each run its own test process (internal/testkit/stressrun: test binaries built first, then run
# under go tool test2json, each bounded by TEST_TIMEOUT; stress-ng started after the build,
# restarted should something else stop it, and stopped after the last run, on failure and on
# Ctrl-C too). Prints passes per test ("TestX  10/10", skips and failures with their error
# lines) and the wall time; fails if any test failed any run. Suites: signaling's recovery
# tests (any test named with Resume, Rejoin, Flap or ICE, and TestCloseDuringAnyPhase), its
# active-speaker and simulcast, dynacast and congestion tests, all of test/e2e (the privacy,
# echo, layer and dynacast tests included), the appliance's mute, privacy, speaker, race,
# audio settings and degradation tests, all of
# internal/testkit/netlab (needs root). Each run's test2json stream is kept in .cache/stress/.
STRESS_N    ?= 10
STRESS_LOAD ?= stress-ng --cpu 2
STRESS_SUITES := './signaling=^(TestCloseDuringAnyPhase|TestActiveSpeaker.*|Test.*(Resume|Rejoin|Flap|ICE|Simulcast|Dynacast|Congestion).*)$$' \
                 './test/e2e=.' \
                 './appliance=Mute|Privacy|Speaker|Race|Presses|Audio|Degrade|Video|Estimate' \
                 './media=Reconfigure|Simulcast' \
                 './internal/testkit/netlab=.'
test-stress: deps stress-deps livekit lkprobe build
	$(GO) build -o $(BIN)/stressrun ./internal/testkit/stressrun
	$(TEST_ENV) $(BIN)/stressrun -n $(STRESS_N) -load '$(STRESS_LOAD)' -timeout $(TEST_TIMEOUT) \
		-logs $(CURDIR)/.cache/stress $(STRESS_SUITES)

# Not part of make test: test/soak's TestSoak, SOAK_DURATION (default 10m) of churn against
# the real binary (signal cuts through a proxy, server kills and restarts, mute toggles,
# subscribers joining and leaving) on a random schedule (SOAK_SEED=N replays one), sampling
# the daemon's RSS and goroutines and decoding its preview for sound while muted.
# SOAK_TIMEOUT must leave 5 minutes beyond SOAK_DURATION.
SOAK_DURATION ?= 10m
SOAK_TIMEOUT  ?= 30m
soak: deps livekit build
	$(TEST_ENV) ROOMBOX_SOAK=1 SOAK_DURATION=$(SOAK_DURATION) SOAK_SEED=$(SOAK_SEED) \
		$(GO) test -count=1 -v -run '^TestSoak$$' -timeout $(SOAK_TIMEOUT) ./test/soak

bench: deps livekit build
	$(TEST_ENV) $(GO) test -run '^$$' -bench . -benchmem -timeout $(TEST_TIMEOUT) ./...

# 720p30 three-layer publishing side by side with GStreamer (videotestsrc ! x264enc per layer):
# CPU and PSS, scripts/bench-gst.sh. GStreamer and its x264enc (plugins-ugly) only for this.
# BENCH_GST_BINARIES measures other roombox builds beside GStreamer instead of bin/roombox.
GST_PACKAGES := gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
bench-gst: build
	$(call apt-install-missing,$(GST_PACKAGES))
	scripts/bench-gst.sh $(BENCH_GST_BINARIES)

# The daemon's PSS and CPU in a room: 720p30 in three layers and the microphone into
# livekit-server with three viewers, scripts/bench-mem.sh (jq reads `roombox status`).
# BENCH_MEM_BINARIES compares builds side by side: make bench-mem BENCH_MEM_BINARIES="old new".
bench-mem: build livekit lkprobe
	$(call apt-install-missing,jq)
	scripts/bench-mem.sh $(BENCH_MEM_BINARIES)

# staticcheck from the module proxy, pinned. SA1019 (deprecated) is off: the data packets'
# `kind` and the user packet's participant identity are deprecated in livekit/protocol but
# are what livekit-server v1.13.5 and older clients still send and read.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# gofmt over every .go file outside bin/; fails if any file needs formatting; go vet;
# staticcheck; vet and staticcheck of tools/lkprobe (its own module).
lint:
	@unformatted=$$(find . -path ./bin -prune -o -path ./.git -prune -o -name '*.go' -print0 | xargs -0 -r gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt: these files need formatting (gofmt -w):"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags vmlabguest ./internal/testkit/vmlab/...
	$(GO) run $(STATICCHECK) -checks inherit,-SA1019 ./...
	cd tools/lkprobe && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) run $(STATICCHECK) -checks inherit,-SA1019 ./...

run: build livekit
	scripts/run-demo.sh

clean:
	rm -rf bin .run .cache
