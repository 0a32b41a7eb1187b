# With dracut (the Red Hat family, or dracut-regenerate on any distribution)
# the initramfs needs dracut's network and iscsi modules.
case " ${IMAGE_ELEMENT:-} " in
    *" dracut-regenerate "*) _iscsi_boot_dracut=1;;
    *) _iscsi_boot_dracut=;;
esac
case "${DISTRO_NAME:-}" in
    centos|rhel|rocky|almalinux|fedora) _iscsi_boot_dracut=1;;
esac
if [ -n "$_iscsi_boot_dracut" ]; then
    DIB_DRACUT_ENABLED_MODULES="${DIB_DRACUT_ENABLED_MODULES:-}
- name: network
- name: iscsi
"
    export DIB_DRACUT_ENABLED_MODULES
fi
unset _iscsi_boot_dracut
