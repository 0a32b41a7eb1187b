#!/bin/bash
# dracut cmdline hook: the ramdisk never mounts a root file system, so give
# dracut a root it accepts, and make a PXE-style ip= something it parses.
# dib-lint: disable=sete setu setpipefail dibdebugtrace

# shellcheck disable=SC2034  # read by dracut after this hook
root=/dev/zero
# shellcheck disable=SC2034
rootok=1

sed 's/\(ip=[^ ]\+\)/\1:::off/' /proc/cmdline > /run/cmdline
mount -n --bind -o ro /run/cmdline /proc/cmdline
# dracut reads the command line again.
# shellcheck disable=SC2034
CMDLINE=
