#!/bin/sh
# Runs after buildroot's board/raspberrypi/post-build.sh, before the root
# filesystem image is made. Arguments and environment: buildroot's manual,
# "Customizing the generated target filesystem" (TARGET_DIR, BR2_CONFIG).
set -eu

# The boot partition (FAT) at /boot: the box reads the provisioning token a
# fleet operator drops there (/boot/roombox-provision.txt, applied and deleted
# by `roombox run --provision-file`), so group roombox (gid 900, users.txt)
# may write it; others may not read it, the token is a secret.
mkdir -p "${TARGET_DIR}/boot"
if ! grep -q '^/dev/mmcblk0p1[[:space:]]' "${TARGET_DIR}/etc/fstab"; then
	printf '/dev/mmcblk0p1\t/boot\tvfat\tdefaults,noatime,gid=900,fmask=0117,dmask=0007\t0\t2\n' \
		>> "${TARGET_DIR}/etc/fstab"
fi

# The fleet's public key, if the configuration names one
# (BR2_PACKAGE_ROOMBOX_FLEET_KEY): with it pinned, only tokens the fleet
# signed provision the box.
key=$(sed -n 's/^BR2_PACKAGE_ROOMBOX_FLEET_KEY="\(.*\)"$/\1/p' "${BR2_CONFIG}")
if [ -n "${key}" ]; then
	if ! grep -q -- '-----BEGIN PUBLIC KEY-----' "${key}"; then
		echo "post-build: ${key} is not a PEM public key (roombox fleet keygen writes fleet.pub)" >&2
		exit 1
	fi
	install -D -m 0644 "${key}" "${TARGET_DIR}/etc/roombox/fleet.pub"
fi
