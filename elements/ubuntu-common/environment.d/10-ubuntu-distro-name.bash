export DISTRO_NAME=${DISTRO_NAME:-ubuntu}
export DIB_RELEASE=${DIB_RELEASE:-noble}
export DIB_DEBIAN_COMPONENTS=${DIB_DEBIAN_COMPONENTS:-main,universe}
export EFI_BOOT_DIR="EFI/ubuntu"
# No mirror is built in: the build fills DIB_DISTRIBUTION_MIRROR from the
# host's apt sources (an Ubuntu archive on an Ubuntu host), or the user sets
# it; root.d/05-ubuntu-check-mirror checks that it holds this release.
export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-}
export DIB_UBUNTU_MIRROR_DISTS=${DIB_UBUNTU_MIRROR_DISTS:-updates,security,backports}
# The archive key: the host's Ubuntu keyring unless DIB_APT_KEYRING names one.
if [ -z "${DIB_APT_KEYRING:-}" ] && [ -f /usr/share/keyrings/ubuntu-archive-keyring.gpg ]; then
    export DIB_APT_KEYRING=/usr/share/keyrings/ubuntu-archive-keyring.gpg
fi
