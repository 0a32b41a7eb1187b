# With dracut (the Red Hat family, or dracut-regenerate on any distribution)
# the initramfs needs dracut's network and iscsi modules, which
# dracut-network brings (package-installs.yaml).
export DIB_ISCSI_BOOT_DRACUT=0
case " ${IMAGE_ELEMENT:-} " in
    *" dracut-regenerate "*) DIB_ISCSI_BOOT_DRACUT=1;;
esac
case "${DISTRO_NAME:-}" in
    centos|rhel|rocky|almalinux|fedora) DIB_ISCSI_BOOT_DRACUT=1;;
esac
if [ "$DIB_ISCSI_BOOT_DRACUT" = 1 ]; then
    # An empty list written as [] would not take more entries.
    if [ "$(echo "${DIB_DRACUT_ENABLED_MODULES:-}" | tr -d '[:space:]')" = "[]" ]; then
        DIB_DRACUT_ENABLED_MODULES=
    fi
    DIB_DRACUT_ENABLED_MODULES="${DIB_DRACUT_ENABLED_MODULES:-}
- name: network
- name: iscsi
"
    export DIB_DRACUT_ENABLED_MODULES
fi
