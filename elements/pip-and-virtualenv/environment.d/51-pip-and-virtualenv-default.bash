# Debian-family and Red Hat 8+ Pythons are managed by the package manager
# (PEP 668 on Debian 12+): packages are the default install type there.
case "${DISTRO_NAME:-}" in
    debian|ubuntu|centos|rhel|rocky|almalinux)
        export DIB_INSTALLTYPE_pip_and_virtualenv=${DIB_INSTALLTYPE_pip_and_virtualenv:-package}
        ;;
esac

# How other elements should call pip and create environments.
export DIB_PYTHON_PIP="${DIB_PYTHON_EXEC:-/usr/bin/python3} -m pip"
export DIB_PYTHON_VIRTUALENV="${DIB_PYTHON_EXEC:-/usr/bin/python3} -m venv"
