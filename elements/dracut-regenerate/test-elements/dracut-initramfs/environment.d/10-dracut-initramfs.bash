# One module of dracut itself (qemu: virtio drivers), besides the network
# and iscsi modules that iscsi-boot adds. A module with packages (lvm2...)
# would cost another initramfs run when the package's trigger fires.
export DIB_DRACUT_ENABLED_MODULES="
- name: qemu
"
