"""The settings registry: every build setting is declared here, once.

Each Setting names its CLI flags, its environment variable (DIB's name where
DIB has one), its key in a YAML manifest, its parser, default and help. The
CLI parsers, the YAML schema, ``--help`` and ``docs/settings.md`` are all
generated from this list, so a setting cannot be half-declared.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from dib.config import types

# How a setting is given on the command line.
VALUE = "value"      # --flag VALUE
SWITCH = "switch"    # --flag (sets True)
OFF_SWITCH = "off-switch"  # --no-flag (sets False: the setting is on by default)
COUNT = "count"      # -x -x (adds one each time)
APPEND = "append"    # -p a,b -p c (comma lists, repeatable)


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    parse: Callable[[str], Any] = str
    default: Any = None
    flags: tuple[str, ...] = ()
    env: str | None = None
    yaml_key: str | None = None
    kind: str = VALUE
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    group: str = "build"
    # False for settings that change how a build runs but not the image
    # (where logs and reports go, the cache): their flags are left out of the
    # dib_arguments manifest, so they do not make two equal images differ.
    recorded: bool = True
    # False for settings that never change what a hook writes into the tree
    # (the disk's size, checksums, where caches live): the phase cache does
    # not key on their variables.
    affects_tree: bool = True
    # True where a flag's value can parse to nothing on purpose (--sbom
    # none): that empty value is then a choice, not "flag not given".
    empty_is_value: bool = False

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default

    @property
    def label(self) -> str:
        """How to name this setting in an error: its flags, else its variable."""
        if self.flags:
            return "/".join(self.flags)
        return self.env or self.name


# Where Debian, Fedora and SUSE keep the bundle of CAs the host trusts.
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                   "/etc/ssl/ca-bundle.pem")


def _host_ca_bundle() -> str:
    return next((p for p in HOST_CA_BUNDLES if os.path.isfile(p)), "")


def _cache_home() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache")


SETTINGS: tuple[Setting, ...] = (
    Setting("image_name", "Output file name without extension.", types.path,
            default="image", flags=("-o",), yaml_key="imagename", metavar="NAME"),
    Setting("image_types", "Comma list of output types (qcow2, raw, vhd, tar, tgz, squashfs, "
            "docker).", types.comma_list, default=("qcow2",), flags=("-t",),
            yaml_key="types", kind=VALUE, metavar="TYPES"),
    Setting("arch", "Target architecture (amd64, arm64, ...); default: the host's.",
            str, default=None, flags=("-a",), env="ARCH", yaml_key="arch"),
    Setting("debug_trace", "Trace hooks with set -x; repeat for more detail.",
            types.non_negative_int, default=0, flags=("-x",), env="DIB_DEBUG_TRACE",
            yaml_key="debug-trace", kind=COUNT, recorded=False, affects_tree=False),
    Setting("uncompressed", "Do not compress qcow2 output.", types.boolean, default=False,
            flags=("-u",), yaml_key="uncompressed", kind=SWITCH),
    Setting("clear_env", "Run hooks with a cleared environment (only DIB_* and the "
            "build's own variables are kept).", types.boolean, default=False,
            flags=("-c",), yaml_key="clear", kind=SWITCH),
    Setting("skip_base", "Do not add the 'base' element.", types.boolean, default=False,
            flags=("-n",), yaml_key="skip-base", kind=SWITCH),
    Setting("packages", "Extra packages to install after install.d (comma list; "
            "repeatable).", types.comma_list, default=(), flags=("-p",),
            yaml_key="packages", kind=APPEND, metavar="PKGS"),
    Setting("checksum", "Write .md5 and .sha256 files beside each image.",
            types.checksum_kinds, default=(), flags=("--checksum",), env="DIB_CHECKSUM",
            yaml_key="checksum", kind=SWITCH, affects_tree=False),
    Setting("sbom", "Software bills of materials to write beside the image and into its "
            "manifests directory: a comma list of spdx (SPDX 2.3 JSON, NAME.spdx.json) and "
            "cyclonedx (CycloneDX 1.5 JSON, NAME.cdx.json); 'none' writes none.",
            types.sbom_formats, default=("spdx",), flags=("--sbom",), env="DIB_SBOM",
            yaml_key="sbom", metavar="FORMATS", affects_tree=False, empty_is_value=True),
    Setting("provenance", "Write NAME.provenance.json beside the image: SLSA v1 provenance "
            "(an in-toto statement) naming each output file with its SHA-256, the elements, "
            "settings and packages the build used; check an image with 'dib verify IMAGE' "
            "(see docs/provenance.md).", types.boolean, default=True,
            flags=("--no-provenance",), env="DIB_PROVENANCE", yaml_key="provenance",
            kind=OFF_SWITCH, recorded=False, affects_tree=False),
    Setting("image_size", "Size of the disk image in GiB, as DIB counts it (fractions allowed); default: "
            "computed from the tree.", types.positive_float, default=None,
            flags=("--image-size",), env="DIB_IMAGE_SIZE", yaml_key="image-size",
            metavar="GB", affects_tree=False),
    Setting("image_extra_size", "Free space to add to the computed image size, in MB.",
            types.non_negative_int, default=None, flags=("--image-extra-size",),
            env="DIB_IMAGE_EXTRA_SIZE", yaml_key="image-extra-size", metavar="MB", affects_tree=False),
    Setting("image_cache", "Directory for downloads that elements cache.", types.path,
            default=lambda: os.path.join(_cache_home(), "image-create"),
            flags=("--image-cache",), env="DIB_IMAGE_CACHE", yaml_key="image-cache",
            metavar="DIR", recorded=False, affects_tree=False),
    Setting("max_online_resize", "Largest size (in blocks) an ext4 root may be resized "
            "to online.", types.non_negative_int, default=None,
            flags=("--max-online-resize",), env="MAX_ONLINE_RESIZE",
            yaml_key="max-online-resize", metavar="BLOCKS"),
    Setting("min_tmpfs", "Accepted for compatibility; builds never use a tmpfs.",
            types.positive_float, default=2.0, flags=("--min-tmpfs",), env="DIB_MIN_TMPFS",
            yaml_key="min-tmpfs", metavar="GB", affects_tree=False),
    Setting("mkfs_journal_size", "ext4 journal size in MB.", types.non_negative_int,
            default=None, flags=("--mkfs-journal-size",), env="DIB_JOURNAL_SIZE",
            yaml_key="mkfs-journal-size", metavar="MB"),
    Setting("mkfs_options", "Extra options for the root filesystem's mkfs.", str,
            default="", flags=("--mkfs-options",), env="MKFS_OPTS", yaml_key="mkfs-options",
            metavar="OPTS"),
    Setting("no_tmpfs", "Accepted for compatibility; builds never use a tmpfs.",
            types.boolean, default=False, flags=("--no-tmpfs",), env="DIB_NO_TMPFS",
            yaml_key="no-tmpfs", kind=SWITCH, affects_tree=False),
    Setting("offline", "Do not fetch what a cache already holds, nor read the apt archives' "
            "state: the phase cache is reused as of the last build online.", types.boolean,
            default=False, flags=("--offline",), env="DIB_OFFLINE", yaml_key="offline",
            kind=SWITCH),
    Setting("qemu_img_options", "Options for qemu-img convert -o (k=v,k=v).",
            types.key_values, default="", flags=("--qemu-img-options",),
            env="QEMU_IMG_OPTIONS", yaml_key="qemu-img-options", metavar="OPTS"),
    Setting("root_label", "Label of the root filesystem (default cloudimg-rootfs, "
            "img-rootfs for xfs).", str, default=None, flags=("--root-label",),
            env="ROOT_LABEL", yaml_key="root-label", metavar="LABEL"),
    Setting("fs_type", "Root filesystem type.", str, default="ext4", flags=("--fs-type",),
            env="FS_TYPE", yaml_key="fs-type", choices=("ext2", "ext3", "ext4", "xfs", "vfat")),
    Setting("ramdisk_element", "Element that builds the ramdisk (ramdisk-image-create).",
            str, default="ramdisk", flags=("--ramdisk-element",), env="RAMDISK_ELEMENT",
            yaml_key="ramdisk-element", metavar="ELEMENT"),
    Setting("install_type", "Default install type for elements.", str, default="source",
            flags=("--install-type",), env="DIB_DEFAULT_INSTALLTYPE",
            yaml_key="install-type", choices=("source", "package")),
    Setting("docker_target", "Image name for -t docker (repo:tag).", str, default=None,
            flags=("--docker-target",), env="DOCKER_TARGET", yaml_key="docker-target",
            metavar="REPO:TAG"),
    Setting("logfile", "Write the build log (with timestamps) to this file.", types.path,
            default=None, flags=("--logfile",), env="LOGFILE", yaml_key="logfile",
            metavar="FILE", recorded=False, affects_tree=False),
    Setting("block_device_config", "Block-device YAML, inline or file://PATH.", str,
            default=None, env="DIB_BLOCK_DEVICE_CONFIG", yaml_key="block-device-config", affects_tree=False),
    Setting("break_points", "Open a shell at these points: before-PHASE, after-PHASE, "
            "after-error (comma list).", types.comma_list, default=(), env="break",
            flags=("--break",), yaml_key="break", metavar="POINTS"),
    Setting("workdir", "Directory for build workspaces.", types.path, default="/var/tmp",
            flags=("--workdir",), env="TMP_DIR", yaml_key="workdir", metavar="DIR", recorded=False, affects_tree=False),
    Setting("keep_workspace", "Keep the workspace of a failed build for inspection.",
            types.boolean, default=False, flags=("--keep-workspace",),
            env="DIB_KEEP_WORKSPACE", yaml_key="keep-workspace", kind=SWITCH, recorded=False, affects_tree=False),
    Setting("dry_run", "Print the build plan and stop.", types.boolean, default=False,
            flags=("--dry-run",), yaml_key="dry-run", kind=SWITCH, recorded=False, affects_tree=False),
    Setting("json_report", "Write a JSON report of the build (phases, hooks, cache) here.",
            types.path, default=None, flags=("--json-report",), yaml_key="json-report",
            metavar="FILE", recorded=False, affects_tree=False),
    Setting("cache_dir", "Directory of the phase cache.", types.path,
            default=lambda: os.path.join(_cache_home(), "dib"), flags=("--cache-dir",),
            env="DIB_CACHE_DIR", yaml_key="cache-dir", metavar="DIR", recorded=False, affects_tree=False),
    Setting("no_cache", "Build from scratch without reading or writing the phase cache.",
            types.boolean, default=False, flags=("--no-cache",), env="DIB_NO_CACHE",
            yaml_key="no-cache", kind=SWITCH, recorded=False, affects_tree=False),
    Setting("cache_max_size", "Size the phase cache is pruned to after each build, least "
            "recently used entries first (10G, 500M; 0: no limit).", types.byte_size,
            default=10 << 30, flags=("--cache-max-size",), env="DIB_CACHE_MAX_SIZE",
            yaml_key="cache-max-size", metavar="SIZE", recorded=False, affects_tree=False),
    Setting("gzip_cache", "Let host-side hooks' gzip (a ramdisk's cpio archive) compress "
            "on every core and reuse the members of earlier builds, kept under the cache "
            "directory; 0 runs the system gzip as it is.", types.boolean, default=True,
            env="DIB_GZIP_CACHE", yaml_key="gzip-cache", recorded=False, affects_tree=False),
    Setting("cache_remote", "Share the phase cache through this OCI registry repository "
            "(oci://HOST[:PORT]/REPO): a step missing here is looked up there, a step "
            "made here is pushed there after the build.", types.oci_url, default=None,
            flags=("--cache-remote",), env="DIB_CACHE_REMOTE", yaml_key="cache-remote",
            metavar="URL", recorded=False, affects_tree=False),
    Setting("cache_remote_mode", "What the build does with --cache-remote: read (pull only), "
            "write (push only) or readwrite.", str, default="readwrite",
            flags=("--cache-remote-mode",), env="DIB_CACHE_REMOTE_MODE",
            yaml_key="cache-remote-mode", choices=("read", "write", "readwrite"),
            recorded=False, affects_tree=False),
    Setting("cache_remote_insecure", "Talk to the --cache-remote registry over plain HTTP "
            "(a registry on a loopback address is always reached that way).", types.boolean,
            default=False, flags=("--cache-remote-insecure",), env="DIB_CACHE_REMOTE_INSECURE",
            yaml_key="cache-remote-insecure", kind=SWITCH, recorded=False, affects_tree=False),
    Setting("cache_remote_required", "Fail at once, before any slow work, when the "
            "--cache-remote registry does not answer (default: warn and build locally).",
            types.boolean, default=False, flags=("--cache-remote-required",),
            env="DIB_CACHE_REMOTE_REQUIRED", yaml_key="cache-remote-required", kind=SWITCH,
            recorded=False, affects_tree=False),
    Setting("explain_cache", "Say for each phase whether it was reused and why not.",
            types.boolean, default=False, flags=("--explain-cache",), yaml_key="explain-cache",
            kind=SWITCH, recorded=False, affects_tree=False),
    Setting("host_ca_bundle", "CA bundle trusted inside the chroot while hooks run (pip, git, "
            "curl behind a TLS-intercepting proxy); never left in the image. Default: the "
            "host's system bundle; 'none' turns it off.", types.optional_path,
            default=_host_ca_bundle, flags=("--host-ca-bundle",), env="DIB_HOST_CA_BUNDLE",
            yaml_key="host-ca-bundle", metavar="FILE", recorded=False, affects_tree=False),
    Setting("hook_timeout", "Stop a hook that runs longer than this many seconds "
            "(0: no limit).", types.non_negative_int, default=0, flags=("--hook-timeout",),
            env="DIB_HOOK_TIMEOUT", yaml_key="hook-timeout", metavar="S", recorded=False, affects_tree=False),
    Setting("check_reproducible", "Build twice and compare the outputs: the first build "
            "as usual, the second from scratch (a fresh phase cache and image cache). "
            "Needs SOURCE_DATE_EPOCH; exits non-zero, naming what differs inside each "
            "file, when the two differ (see docs/reproducible.md).", types.boolean,
            default=False, flags=("--check-reproducible",), env="DIB_CHECK_REPRODUCIBLE",
            yaml_key="check-reproducible", kind=SWITCH, recorded=False, affects_tree=False),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def by_name(name: str) -> Setting:
    return _BY_NAME[name]


def recorded_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    """The command line without the flags of settings that do not shape the image."""
    dropped = {flag: setting for setting in SETTINGS if not setting.recorded
               for flag in setting.flags}
    out: list[str] = []
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
            continue
        flag = token.split("=", 1)[0]
        setting = dropped.get(flag)
        if setting is None and token.startswith("-x") and set(token[1:]) == {"x"}:
            continue   # -x, -xx: tracing only
        if setting is None:
            out.append(token)
            continue
        skip_value = setting.kind == VALUE and "=" not in token
    return out
