#!/bin/bash
# Makes output/images/sdcard.img with genimage, the way buildroot's
# board/raspberrypi/post-image.sh does, from this board's genimage.cfg.in (a
# labelled, larger boot partition holding README-roombox.txt).
# Environment: BINARIES_DIR, BUILD_DIR (buildroot's manual, "Customization
# after the images have been created").
set -euo pipefail

BOARD_DIR="$(dirname "$0")"
GENIMAGE_CFG="${BINARIES_DIR}/genimage.cfg"
GENIMAGE_TMP="${BUILD_DIR}/genimage.tmp"

# What goes on the boot partition, as genimage's files list: the firmware
# (rpi-firmware/: start*.elf, config.txt, cmdline.txt, overlays), the device
# trees and the kernel config.txt names.
cp "${BOARD_DIR}/README-boot.txt" "${BINARIES_DIR}/README-roombox.txt"
files=(README-roombox.txt)
for f in "${BINARIES_DIR}"/*.dtb "${BINARIES_DIR}"/rpi-firmware/*; do
	files+=("${f#"${BINARIES_DIR}"/}")
done
files+=("$(sed -n 's/^kernel=//p' "${BINARIES_DIR}/rpi-firmware/config.txt")")
boot_files=$(printf '\\t\\t\\t"%s",\\n' "${files[@]}")
sed "s|#BOOT_FILES#|${boot_files}|" "${BOARD_DIR}/genimage.cfg.in" > "${GENIMAGE_CFG}"

# genimage copies its root path; the root filesystem image is already built,
# so it gets an empty one.
rootpath_tmp="$(mktemp -d)"
trap 'rm -rf "${rootpath_tmp}"' EXIT
rm -rf "${GENIMAGE_TMP}"
genimage \
	--rootpath "${rootpath_tmp}" \
	--tmppath "${GENIMAGE_TMP}" \
	--inputpath "${BINARIES_DIR}" \
	--outputpath "${BINARIES_DIR}" \
	--config "${GENIMAGE_CFG}"
