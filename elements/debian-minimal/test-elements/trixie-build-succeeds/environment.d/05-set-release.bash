# Before debian-minimal's own file (10-), which builds the apt sources from
# DIB_RELEASE.
export DIB_RELEASE=trixie
