#!/bin/bash
# dracut module "deploy-ramdisk": the ramdisk's /init, assembled by
# 99-build-dracut-ramdisk, runs as a pre-mount hook.
# dracut sources this file; its own code breaks under set -eu.
# dib-lint: disable=sete setu setpipefail dibdebugtrace

check() {
    return 0
}

depends() {
    return 0
}

install() {
    # shellcheck disable=SC2154  # moddir is dracut's
    inst_hook cmdline 80 "$moddir/deploy-cmdline.sh"
    inst_hook pre-mount 50 "$moddir/init.sh"
}
