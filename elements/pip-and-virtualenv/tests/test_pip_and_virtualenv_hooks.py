"""Unit tests for the pip-and-virtualenv element (dib.testing: no root, no network)."""
import subprocess
from pathlib import Path

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
ENV_FILE = ELEMENT / "environment.d" / "51-pip-and-virtualenv-default.bash"
# Stand-in for the interpreter: "-m pip install --help" lists the PEP 668 flag.
FAKE_PYTHON = ('case "$*" in *--help*) echo "  --break-system-packages  Allow pip to modify";; '
               'esac')


def sourced(**env):
    """The variables the environment file exports, for a distribution."""
    script = f"source {ENV_FILE}; echo \"$DIB_INSTALLTYPE_pip_and_virtualenv|$DIB_PYTHON_PIP|" \
             "$DIB_PYTHON_VIRTUALENV\""
    out = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().split("|")


def test_package_is_the_debian_default():
    assert sourced(DISTRO_NAME="debian")[0] == "package"
    assert sourced(DISTRO_NAME="ubuntu")[0] == "package"


def test_source_can_be_asked_for():
    assert sourced(DISTRO_NAME="debian", DIB_INSTALLTYPE_pip_and_virtualenv="source")[0] == \
        "source"


def test_other_distributions_follow_the_default_install_type():
    assert sourced(DISTRO_NAME="gentoo")[0] == ""


def test_commands_name_the_images_python():
    _, pip, venv = sourced(DISTRO_NAME="debian", DIB_PYTHON_EXEC="/usr/bin/python3")
    assert pip == "/usr/bin/python3 -m pip"
    assert venv == "/usr/bin/python3 -m venv"


class TestSourceInstall(HookTestCase):
    """install.d/pip-and-virtualenv-source-install/04-install-pip."""

    element = ELEMENT
    stub_commands = {"python3": {"script": FAKE_PYTHON}}

    def install(self):
        return self.run_hook("install", "pip-and-virtualenv-source-install/04-install-pip",
                             env={"DIB_PYTHON_EXEC": "python3"})

    def test_upgrades_pip_and_virtualenv(self):
        self.install()
        self.assertHookSucceeded()
        self.assertCalled("python3", "-m", "pip", "install", "--upgrade", "--no-cache-dir",
                          "--break-system-packages", "pip", "virtualenv", exact=True)

    def test_older_pip_without_the_flag(self):
        self.stubs.add("python3", script="true")
        self.install()
        self.assertHookSucceeded()
        self.assertCalled("python3", "-m", "pip", "install", "--upgrade", "--no-cache-dir",
                          "pip", "virtualenv", exact=True)

    def test_unreachable_index_is_explained(self):
        self.stubs.add("python3", script=FAKE_PYTHON + '; case "$*" in *virtualenv*) exit 1;; esac')
        self.install()
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("pip-and-virtualenv (install.d/04-install-pip): installing pip "
                                  "and virtualenv from the package index failed")
        self.assertOutputContains("DIB_INSTALLTYPE_pip_and_virtualenv=package")


class TestCleanup(HookTestCase):
    """post-install.d/89-clean-up-pip-cache."""

    element = ELEMENT
    stub_commands = ()

    def test_cache_removed(self):
        self.root.write("/root/.cache/pip/http/abc", "x")
        self.run_hook("post-install", "89-clean-up-pip-cache")
        self.assertHookSucceeded()
        self.assertFileAbsent("/root/.cache/pip")

    def test_cache_kept_on_request(self):
        self.root.write("/root/.cache/pip/http/abc", "x")
        self.run_hook("post-install", "89-clean-up-pip-cache", env={"DIB_DISABLE_PIP_CLEANUP": "1"})
        self.assertHookSucceeded()
        self.assertFileExists("/root/.cache/pip/http/abc")
