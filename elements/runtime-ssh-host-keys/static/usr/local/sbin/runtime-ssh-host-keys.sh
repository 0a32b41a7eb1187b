#!/bin/bash
# Make the SSH host keys this machine lacks (RSA, ECDSA, Ed25519), so each
# machine booted from the image gets keys of its own. A key that exists, or
# that another boot service writes meanwhile, is kept.
# Installed by the runtime-ssh-host-keys element; run at boot before sshd.

if [ "${DIB_DEBUG_TRACE:-0}" -gt 0 ]; then
    set -x
fi
set -eu
set -o pipefail

mkdir -p /etc/ssh
for type in rsa ecdsa ed25519; do
    key=/etc/ssh/ssh_host_${type}_key
    if [ -f "$key" ]; then
        continue
    fi
    # With stdin closed ssh-keygen refuses to overwrite a key that appeared
    # since the test above; that key is as good as ours.
    if ! ssh-keygen -q -t "$type" -N '' -C "root@$(hostname 2> /dev/null || echo localhost)" \
            -f "$key" < /dev/null && [ ! -f "$key" ]; then
        echo "runtime-ssh-host-keys: could not make $key" >&2
        exit 1
    fi
    echo "runtime-ssh-host-keys: made $key"
done
