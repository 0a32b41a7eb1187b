"""The environment hooks see: DIB's variables, the caller's DIB_* and environment.d."""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Mapping

from dib import runner
from dib.config.build import BuildConfig
from dib.config.settings import SETTINGS, recorded_argv
from dib.elements.envinfo import element_array_body, image_element_vars
from dib.elements.model import environment_files
from dib.elements.resolve import Resolution
from dib.runtime.workspace import Workspace

CHROOT_LIB = "/tmp/in_target.d/lib"
CHROOT_PATH = "/tmp/in_target.d/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Kept when -c clears the environment: the build cannot work without them.
ALWAYS_KEPT = ("PATH", "HOME", "TERM", "LANG", "USER", "LOGNAME", "ELEMENTS_PATH")
# Host-specific variables that must not leak into the chroot.
NOT_IN_CHROOT = ("TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "TARGET_ROOT",
                 "LD_LIBRARY_PATH")
# The DIB_* variables base_environment gives every hook, whatever the caller's
# environment. With the settings' variables (docs/settings.md) they are what an
# element may read without documenting it: the build, not an element, owns them.
HOOK_DIB_VARIABLES = ("DIB_ARGS", "DIB_CHECKSUM", "DIB_DEBUG_TRACE", "DIB_DEFAULT_INSTALLTYPE",
                      "DIB_ENV", "DIB_IMAGE_CACHE", "DIB_LOCKFILES", "DIB_MIN_TMPFS",
                      "DIB_NO_TMPFS", "DIB_OFFLINE", "DIB_PYTHON_EXEC")


def engine_variables() -> frozenset[str]:
    """Every DIB_* variable the build itself defines for hooks: the settings'
    variables and HOOK_DIB_VARIABLES."""
    return frozenset(HOOK_DIB_VARIABLES) | {s.env for s in SETTINGS
                                            if s.env and s.env.startswith("DIB_")}


def dib_env_text(environ: Mapping[str, str]) -> str:
    """DIB_ENV as DIB records it: one ``export DIB_X="value"`` line per DIB_* variable.
    A build asked to be reproducible (SOURCE_DATE_EPOCH) leaves out those
    that only say where this host keeps caches, logs and work directories:
    they would make two builds of one image differ."""
    unrecorded = host_only_variables() if environ.get("SOURCE_DATE_EPOCH") else frozenset()
    lines = [f"declare -x {k}={shlex.quote(v)}" for k, v in sorted(environ.items())
             if k.startswith("DIB_") and k not in unrecorded]
    return "\n".join(lines)


def host_only_variables() -> frozenset[str]:
    """The variables of settings that do not shape the image, and DIB_LOCKFILES
    (a directory in the phase cache)."""
    return frozenset({s.env for s in SETTINGS if s.env and not s.recorded} | {"DIB_LOCKFILES"})


def base_environment(config: BuildConfig, *, workspace: Workspace, resolution: Resolution,
                     elements_path: list[Path], extra: Mapping[str, str]) -> dict[str, str]:
    if config.clear_env:
        env = {k: v for k, v in config.environ.items()
               if k.startswith("DIB_") or k in ALWAYS_KEPT}
    else:
        env = dict(config.environ)
    env.update(image_element_vars(resolution))
    env["BASH_FUNC_get_image_element_array%%"] = (
        f'() {{  echo "{element_array_body(resolution)}"\n}}')
    env.update({
        "ARCH": config.arch,
        "IMAGE_NAME": config.image_name,
        "IMAGE_TYPES": " ".join(config.image_types),
        "ELEMENTS_PATH": ":".join(str(p) for p in elements_path),
        "TMP_BUILD_DIR": str(workspace.root),
        "TMP_IMAGE_DIR": str(workspace.image_dir),
        "TMP_HOOKS_PATH": str(workspace.hooks),
        "_LIB": str(workspace.hooks / "lib"),
        "TMP_MOUNT_PATH": str(workspace.tree),
        "DIB_DEBUG_TRACE": str(config.debug_trace),
        "DIB_OFFLINE": "1" if config.offline else "",
        "DIB_IMAGE_CACHE": config.image_cache,
        # Always set, as DIB does: hooks that write their own outputs
        # (ramdisk-base, ironic-python-agent-ramdisk) read it under set -u.
        "DIB_CHECKSUM": ",".join(config.checksum) or "0",
        "DIB_DEFAULT_INSTALLTYPE": config.install_type,
        "DIB_LOCKFILES": os.path.join(config.cache_dir, "lockfiles"),
        "DIB_PYTHON_EXEC": "/usr/bin/python3",
        "DIB_ARGS": " ".join(shlex.quote(a) for a in recorded_argv(config.argv)),
        "FS_TYPE": config.fs_type,
        "INSTALL_PACKAGES": " ".join(config.packages),
        "LC_ALL": "C",
    })
    if config.ramdisk:
        # ramdisk-image-create exports these, as DIB's ramdisk-defaults does.
        env.update({"RAMDISK_ELEMENT": config.ramdisk_element,
                    "DIB_NO_TMPFS": env.get("DIB_NO_TMPFS", "1"),
                    "DIB_MIN_TMPFS": env.get("DIB_MIN_TMPFS", "1")})
    env.update(extra)
    env["DIB_ENV"] = dib_env_text(env)
    return env


def host_phase_env(env: Mapping[str, str], workspace: Workspace) -> dict[str, str]:
    out = dict(env)
    out["TARGET_ROOT"] = str(workspace.tree)
    path = out.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin") + f":{workspace.hooks}/bin"
    # dib's shims go first: they stand in for host commands of the same name
    if workspace.host_bin.is_dir():
        path = f"{workspace.host_bin}:{path}"
    out["PATH"] = path
    return out


def chroot_phase_env(env: Mapping[str, str]) -> dict[str, str]:
    out = {k: v for k, v in env.items() if k not in NOT_IN_CHROOT}
    out["PATH"] = CHROOT_PATH
    out["HOME"] = "/root"
    out["_LIB"] = CHROOT_LIB
    return out


def sourced_environment(hooks_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The environment after sourcing every environment.d file, as hooks see it.

    The build needs these values itself (DIB_RELEASE, DISTRO_NAME, ...) for
    package-installs ``when`` rules and for cache keys.
    """
    files = environment_files(hooks_dir)
    script = "".join(f"source {shlex.quote(str(f))}\n" for f in files) + "env -0\n"
    result = runner.run(["bash", "-c", "set -e\n" + script], env=env,
                        what="sourcing environment.d")
    out = {}
    for item in result.stdout.split("\0"):
        if "=" in item:
            key, value = item.split("=", 1)
            out[key] = value
    return out
