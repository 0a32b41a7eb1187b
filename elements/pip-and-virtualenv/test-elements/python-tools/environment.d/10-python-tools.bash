# Hosts apt reaches without a proxy (local-config); no proxy is set, since
# the build itself would then go through it.
export no_proxy="localhost,packages.internal"
