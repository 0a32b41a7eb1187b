# Inside the chroot the hooks directory is /tmp/in_target.d.
if [ -d /tmp/in_target.d ]; then
    export PIP_CERT=/tmp/in_target.d/bench-host-ca.crt
fi
