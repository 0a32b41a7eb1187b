#!/bin/bash
# Configure the network interfaces the firmware's iSCSI Boot Firmware Table
# (iBFT) describes, so that an iSCSI-booted machine keeps the addresses its
# firmware used. Installed by the ibft-interfaces element; run at boot.

if [ "${DIB_DEBUG_TRACE:-0}" -gt 0 ]; then
    set -x
fi
set -eu
set -o pipefail

if ! command -v iscsistart > /dev/null; then
    echo "init-ibft-interfaces: iscsistart is not installed; iBFT interfaces not configured" >&2
    exit 1
fi

# iscsistart -f prints the firmware's boot values and fails when there are none.
if ! iscsistart -f > /dev/null 2>&1; then
    echo "init-ibft-interfaces: the firmware has no iBFT; nothing to configure"
    exit 0
fi

if ! iscsistart -N; then
    echo "init-ibft-interfaces: iscsistart could not configure the iBFT interfaces" >&2
    exit 1
fi

# Let udev finish with the interfaces (and disks) that appeared.
if command -v udevadm > /dev/null; then
    udevadm settle
fi
echo "init-ibft-interfaces: iBFT interfaces configured"
