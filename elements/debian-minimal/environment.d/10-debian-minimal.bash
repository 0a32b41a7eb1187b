export DISTRO_NAME=debian
export DIB_RELEASE=${DIB_RELEASE:-bookworm}
export DIB_INIT_SYSTEM=systemd
export EFI_BOOT_DIR="EFI/debian"

# The build fills both mirrors in from the host's apt sources; a
# Debian-specific override wins over the generic one.
if [ -n "${DIB_DEBIAN_DISTRIBUTION_MIRROR:-}" ]; then
    DIB_DISTRIBUTION_MIRROR=$DIB_DEBIAN_DISTRIBUTION_MIRROR
fi
export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-}
export DIB_DEBIAN_SECURITY_MIRROR=${DIB_DEBIAN_SECURITY_MIRROR:-}
export DIB_DEBIAN_SECURITY_SUBPATH=${DIB_DEBIAN_SECURITY_SUBPATH:-}

export DIB_DEBIAN_COMPONENTS=${DIB_DEBIAN_COMPONENTS:-main}
export DIB_DEBIAN_COMPONENTS_WS=${DIB_DEBIAN_COMPONENTS//,/ }

# What the bootstrap installs besides minbase: an init, the busybox the
# initramfs wants, sudo, gnupg for apt keys, python3 for the build helpers.
export DIB_DEBOOTSTRAP_INCLUDE="${DIB_DEBOOTSTRAP_INCLUDE:-} apt tzdata systemd-sysv busybox sudo gnupg python3 zstd"

# "name:deb URI SUITE COMPONENTS" lines; one apt source each.
if [ -z "${DIB_APT_SOURCES_CONF:-}" ]; then
    DIB_APT_SOURCES_CONF="default:deb ${DIB_DISTRIBUTION_MIRROR} ${DIB_RELEASE} ${DIB_DEBIAN_COMPONENTS_WS}"
    case "$DIB_RELEASE" in
        testing|unstable|sid|experimental) ;;
        *)
            DIB_APT_SOURCES_CONF+=$'\n'"updates:deb ${DIB_DISTRIBUTION_MIRROR} ${DIB_RELEASE}-updates ${DIB_DEBIAN_COMPONENTS_WS}"
            if [ -n "$DIB_DEBIAN_SECURITY_MIRROR" ]; then
                DIB_APT_SOURCES_CONF+=$'\n'"security:deb ${DIB_DEBIAN_SECURITY_MIRROR} ${DIB_RELEASE}-security${DIB_DEBIAN_SECURITY_SUBPATH} ${DIB_DEBIAN_COMPONENTS_WS}"
            fi
            ;;
    esac
fi
export DIB_APT_SOURCES_CONF
