################################################################################
#
# roombox
#
################################################################################

# The source is the repository this br2-external tree lives in (buildroot/ is
# one of its directories), so an image is built from exactly the checkout at
# hand. Another checkout: ROOMBOX_OVERRIDE_SRCDIR = /path/to/roombox in
# local.mk (docs/FLASHING.md). The version is what `roombox version` reports.
ROOMBOX_VERSION := $(shell git -C $(BR2_EXTERNAL_ROOMBOX_PATH) describe --always --dirty 2>/dev/null || echo custom)
ROOMBOX_SITE = $(realpath $(BR2_EXTERNAL_ROOMBOX_PATH)/..)
ROOMBOX_SITE_METHOD = local
# Build outputs and caches of the development checkout (the VM lab's kernel
# alone is ~70 MB) stay out of the build directory.
ROOMBOX_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/bin/ --exclude=/.cache/ --exclude=/.run/ --exclude=/artifacts/ \
	--exclude=node_modules/
ROOMBOX_LICENSE = Proprietary
ROOMBOX_DEPENDENCIES = host-pkgconf opus opusfile x264 libyuv alsa-lib webrtc-audio-processing-0-3
ROOMBOX_GOMOD = roombox
ROOMBOX_BUILD_TARGETS = cmd/roombox
ROOMBOX_LDFLAGS = -X main.version=$(ROOMBOX_VERSION)

# Buildroot builds Go offline from vendor/ (GOFLAGS=-mod=vendor, GOPROXY=off);
# a git or tarball site gets it from the download step, a local site has no
# download step, so the modules are vendored here, once, before the build.
# GOPROXY is the builder's (default: the public proxy).
define ROOMBOX_VENDOR_MODULES
	if [ ! -f $(@D)/vendor/modules.txt ]; then \
		cd $(@D) && $(HOST_GO_COMMON_ENV) GOFLAGS=-mod=mod \
			GOPROXY=$(or $(GOPROXY),https://proxy.golang.org$(comma)direct) \
			$(GO_BIN) mod vendor; \
	fi
endef
ROOMBOX_PRE_CONFIGURE_HOOKS += ROOMBOX_VENDOR_MODULES

# The unit, udev rules (gpiochip access), tmpfiles and sysusers entries come
# from the repository's systemd/ directory.
define ROOMBOX_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/systemd/roombox.service \
		$(TARGET_DIR)/usr/lib/systemd/system/roombox.service
	$(INSTALL) -D -m 0644 $(@D)/systemd/99-roombox.rules \
		$(TARGET_DIR)/usr/lib/udev/rules.d/99-roombox.rules
	$(INSTALL) -D -m 0644 $(@D)/systemd/roombox.tmpfiles \
		$(TARGET_DIR)/usr/lib/tmpfiles.d/roombox.conf
	$(INSTALL) -D -m 0644 $(@D)/systemd/roombox.sysusers \
		$(TARGET_DIR)/usr/lib/sysusers.d/roombox.conf
endef

# The unit's user: created at build time (the root filesystem may be read-only
# at run time). The board's users table pins its IDs.
define ROOMBOX_USERS
	roombox -1 roombox -1 * - - video,audio,input,gpio roombox daemon
endef

# What the daemon opens: V4L2 cameras (USB UVC) and the M2M encoder, ALSA
# (USB speakerphones), the GPIO character device, evdev keys, and uinput (the
# simulated buttons). Parents are listed too: olddefconfig drops an option
# whose parent is off.
define ROOMBOX_LINUX_CONFIG_FIXUPS
	$(call KCONFIG_ENABLE_OPT,CONFIG_MEDIA_SUPPORT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_MEDIA_CAMERA_SUPPORT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_VIDEO_DEV)
	$(call KCONFIG_ENABLE_OPT,CONFIG_MEDIA_USB_SUPPORT)
	$(call KCONFIG_ENABLE_OPT,CONFIG_USB_VIDEO_CLASS)
	$(call KCONFIG_ENABLE_OPT,CONFIG_SND)
	$(call KCONFIG_ENABLE_OPT,CONFIG_SND_USB)
	$(call KCONFIG_ENABLE_OPT,CONFIG_SND_USB_AUDIO)
	$(call KCONFIG_ENABLE_OPT,CONFIG_GPIOLIB)
	$(call KCONFIG_ENABLE_OPT,CONFIG_GPIO_CDEV)
	$(call KCONFIG_ENABLE_OPT,CONFIG_INPUT_EVDEV)
	$(call KCONFIG_ENABLE_OPT,CONFIG_INPUT_MISC)
	$(call KCONFIG_ENABLE_OPT,CONFIG_INPUT_UINPUT)
endef

$(eval $(golang-package))
