# netplan.io is installed where cloud-init expects it (bookworm and later).
if [ -z "${DIB_DEBIAN_NETPLAN:-}" ]; then
    case "${DIB_RELEASE:-}" in
        buster|bullseye) DIB_DEBIAN_NETPLAN=0;;
        *) DIB_DEBIAN_NETPLAN=1;;
    esac
fi
export DIB_DEBIAN_NETPLAN
