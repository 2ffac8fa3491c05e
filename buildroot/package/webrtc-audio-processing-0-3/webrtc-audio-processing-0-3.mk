################################################################################
#
# webrtc-audio-processing-0-3
#
################################################################################

# The release roombox's media/apm is written and tested against (Debian
# bookworm's libwebrtc-audio-processing-dev 0.3-1), so the image runs the same
# echo canceller the tests measure. Not built here: this machine reaches
# neither freedesktop.org nor buildroot.org (see docs/FLASHING.md).
WEBRTC_AUDIO_PROCESSING_0_3_VERSION = 0.3
WEBRTC_AUDIO_PROCESSING_0_3_SOURCE = webrtc-audio-processing-$(WEBRTC_AUDIO_PROCESSING_0_3_VERSION).tar.xz
WEBRTC_AUDIO_PROCESSING_0_3_SITE = https://freedesktop.org/software/pulseaudio/webrtc-audio-processing
WEBRTC_AUDIO_PROCESSING_0_3_LICENSE = BSD-3-Clause
WEBRTC_AUDIO_PROCESSING_0_3_LICENSE_FILES = COPYING
WEBRTC_AUDIO_PROCESSING_0_3_INSTALL_STAGING = YES

$(eval $(autotools-package))
