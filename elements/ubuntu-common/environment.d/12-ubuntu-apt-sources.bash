# "name:deb URI SUITE COMPONENTS" lines, as debian-minimal writes them: the
# release and each of DIB_UBUNTU_MIRROR_DISTS. The bootstrap reads every
# suite, so the tree starts up to date.
if [ -z "${DIB_APT_SOURCES_CONF:-}" ]; then
    DIB_APT_SOURCES_CONF="default:deb ${DIB_DISTRIBUTION_MIRROR} ${DIB_RELEASE} ${DIB_DEBIAN_COMPONENTS//,/ }"
    for _ubuntu_dist in ${DIB_UBUNTU_MIRROR_DISTS//,/ }; do
        DIB_APT_SOURCES_CONF+=$'\n'"${_ubuntu_dist}:deb ${DIB_DISTRIBUTION_MIRROR} ${DIB_RELEASE}-${_ubuntu_dist} ${DIB_DEBIAN_COMPONENTS//,/ }"
    done
    unset _ubuntu_dist
fi
export DIB_APT_SOURCES_CONF
export DIB_DEBOOTSTRAP_INCLUDE="${DIB_DEBOOTSTRAP_INCLUDE:-} apt systemd-sysv busybox sudo python3 ca-certificates"
