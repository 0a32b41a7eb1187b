"""GRUB for BIOS and UEFI, written into an image file without a loop device.

Two steps around the disk build:

* ``prepare_tree(tree, plan, cmdline)`` (before mkfs) writes
  ``/boot/grub/grub.cfg`` into the tree: root by UUID, DIB's kernel command
  line defaults, serial console.
* ``install(raw, plan)`` (after ``build_disk``) embeds an i386-pc core image
  in the MBR gap or the bios-boot partition, and puts an x86_64-efi GRUB at
  the removable path ``EFI/BOOT/BOOTX64.EFI`` on the ESP with mtools.  Both
  carry a small early config that finds the filesystem holding /boot by UUID
  and loads its grub.cfg, so no GRUB modules are needed on the disk.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from dib import runner
from dib.blockdev.assemble import mtools_env
from dib.blockdev.layout import DiskPlan
from dib.bootloader import bios
from dib.errors import BlockDeviceError, PreflightError

GRUB_LIB = Path("/usr/lib/grub")
BIOS_MODULES = ["biosdisk", "part_msdos", "part_gpt", "ext2", "fat", "search",
                "search_fs_uuid", "search_label", "configfile", "normal", "linux", "boot",
                "serial", "terminal", "echo", "test", "minicmd", "sleep"]
EFI_MODULES = ["part_msdos", "part_gpt", "ext2", "fat", "search", "search_fs_uuid",
               "search_label", "configfile", "normal", "linux", "boot", "serial", "terminal",
               "echo", "test", "minicmd", "sleep", "efi_gop"]


@dataclass
class BootOptions:
    """DIB's bootloader element settings (environment.d defaults)."""

    timeout: int = 5
    timeout_style: str = "menu"
    default_cmdline: str = "nofb nomodeset gfxpayload=text"
    use_serial_console: bool = True
    serial_console: str = "ttyS0,115200"
    virtual_terminal: str = "tty0"
    no_timer_check: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "BootOptions":
        env = os.environ if env is None else env
        opts = cls()
        if env.get("DIB_GRUB_TIMEOUT", "").strip():
            try:
                opts.timeout = int(env["DIB_GRUB_TIMEOUT"])
            except ValueError:
                raise BlockDeviceError(f"DIB_GRUB_TIMEOUT={env['DIB_GRUB_TIMEOUT']!r} is not "
                                       "a whole number of seconds") from None
        style = env.get("DIB_GRUB_TIMEOUT_STYLE", "").strip()
        if style:
            opts.timeout_style = "hidden" if style == "countdown" else style
        if "DIB_BOOTLOADER_DEFAULT_CMDLINE" in env:
            opts.default_cmdline = env["DIB_BOOTLOADER_DEFAULT_CMDLINE"]
        opts.use_serial_console = env.get("DIB_BOOTLOADER_USE_SERIAL_CONSOLE",
                                          "True").lower() not in ("false", "0", "no")
        if env.get("DIB_BOOTLOADER_SERIAL_CONSOLE", "").strip():
            opts.serial_console = env["DIB_BOOTLOADER_SERIAL_CONSOLE"].strip()
        if "DIB_BOOTLOADER_VIRTUAL_TERMINAL" in env:
            opts.virtual_terminal = env["DIB_BOOTLOADER_VIRTUAL_TERMINAL"]
        opts.no_timer_check = env.get("DIB_NO_TIMER_CHECK", "True").lower() \
            not in ("false", "0", "no")
        return opts

    def serial_unit_speed(self) -> tuple[int, int]:
        match = re.match(r"^ttyS(\d+)(?:,(\d+))?", self.serial_console)
        if not match:
            return 0, 115200
        return int(match.group(1)), int(match.group(2) or 115200)

    def kernel_cmdline(self, extra: str | None = None) -> str:
        parts = []
        if self.virtual_terminal:
            parts.append(f"console={self.virtual_terminal}")
        if self.use_serial_console and self.serial_console:
            parts.append(f"console={self.serial_console}")
        if self.no_timer_check:
            parts.append("no_timer_check")
        if self.default_cmdline:
            parts.append(self.default_cmdline)
        if extra:
            parts.append(extra)
        return " ".join(parts)

    def terminal_lines(self) -> list[str]:
        if not self.use_serial_console:
            return ["terminal_input console", "terminal_output console"]
        unit, speed = self.serial_unit_speed()
        return [f"serial --unit={unit} --speed={speed}",
                "terminal_input serial console", "terminal_output serial console"]


@dataclass
class BootSetup:
    """What prepare_tree wrote."""

    grub_cfg: Path
    kernel_version: str
    root_uuid: str
    boot_uuid: str
    boot_separate: bool
    cmdline: str
    kernels: list[str] = field(default_factory=list)


@dataclass
class InstallResult:
    bios: bool
    uefi: bool
    seconds: float
    core_img_bytes: int = 0
    efi_bytes: int = 0


def _version_key(version: str) -> list:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+~_]", version)]


def find_kernels(boot_dir: Path) -> list[str]:
    """Kernel versions under /boot, newest first."""
    versions = [p.name[len("vmlinuz-"):] for p in boot_dir.glob("vmlinuz-*")
                if p.is_file() or p.is_symlink()]
    return sorted(versions, key=_version_key, reverse=True)


def _os_name(tree: Path) -> str:
    try:
        for line in (tree / "etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def prepare_tree(tree: Path, plan: DiskPlan, cmdline: str | None = None, *,
                 options: BootOptions | None = None) -> BootSetup:
    """Write /boot/grub/grub.cfg into the tree (before mkfs).  ``plan`` may be
    the unsized one: only which filesystems hold / and /boot, and their ids,
    matter here."""
    tree = Path(tree)
    opts = options or BootOptions.from_env()
    root, boot = plan.root_fs, plan.boot_fs
    if root is None or boot is None:
        raise BlockDeviceError("the block-device config mounts nothing at /; "
                               "no bootloader can be configured")
    if not root.fs_uuid or not boot.fs_uuid:
        raise BlockDeviceError("filesystem UUIDs are not known yet",
                               hint="call config.assign_ids(seed) before prepare_tree")
    kernels = find_kernels(tree / "boot")
    if not kernels:
        raise BlockDeviceError(f"no kernel found in {tree / 'boot'} (vmlinuz-*)",
                               hint="install a kernel package in the image "
                                    "(e.g. linux-image-cloud-amd64)")
    separate = boot is not root
    prefix = "" if separate else "/boot"
    full_cmdline = opts.kernel_cmdline(cmdline)
    name = _os_name(tree)
    lines = ["# written by dib: GRUB configuration", "set default=0",
             f"set timeout={opts.timeout}", f"set timeout_style={opts.timeout_style}",
             *opts.terminal_lines(), "set gfxpayload=text", ""]
    for index, version in enumerate(kernels):
        title = name if index == 0 else f"{name}, Linux {version}"
        lines += [f"menuentry '{title}' --id 'dib-{version}' {{",
                  f"    search --no-floppy --fs-uuid --set=root {boot.fs_uuid}",
                  f"    echo 'Loading Linux {version} ...'",
                  f"    linux {prefix}/vmlinuz-{version} root=UUID={root.fs_uuid} ro "
                  f"{full_cmdline}"]
        initrd = tree / "boot" / f"initrd.img-{version}"
        if initrd.exists():
            lines.append(f"    initrd {prefix}/initrd.img-{version}")
        lines += ["}", ""]
    cfg = tree / "boot" / "grub" / "grub.cfg"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("\n".join(lines))
    return BootSetup(grub_cfg=cfg, kernel_version=kernels[0], root_uuid=root.fs_uuid,
                     boot_uuid=boot.fs_uuid, boot_separate=separate, cmdline=full_cmdline,
                     kernels=kernels)


def early_config(boot_uuid: str, boot_separate: bool, options: BootOptions | None = None
                 ) -> str:
    """The config embedded in the core/EFI image: find /boot, load its grub.cfg."""
    opts = options or BootOptions.from_env()
    prefix = "($root)/grub" if boot_separate else "($root)/boot/grub"
    return "\n".join([*opts.terminal_lines(),
                      f"search --no-floppy --fs-uuid --set=root {boot_uuid}",
                      f"set prefix={prefix}",
                      "configfile $prefix/grub.cfg", ""])


def required_tools(plan: DiskPlan | None = None) -> list[tuple[str, str]]:
    tools = [("grub-mkimage", "grub-common")]
    if plan is None or (plan.esp_fs is not None):
        tools += [("mcopy", "mtools"), ("mmd", "mtools")]
    return tools


def firmware_support(plan: DiskPlan) -> tuple[bool, bool]:
    """(bios, uefi) this layout can boot with."""
    return plan.bios_embed_area() is not None, plan.esp_fs is not None


def preflight(plan: DiskPlan, *, grub_lib: Path = GRUB_LIB) -> tuple[bool, bool]:
    """Fail early when the host lacks what this layout's bootloader needs."""
    want_bios, want_uefi = firmware_support(plan)
    if not (want_bios or want_uefi):
        raise PreflightError(
            "this block-device layout has neither room for BIOS GRUB (an MBR gap or a "
            "bios-boot EF02 partition) nor an EFI system partition",
            hint="use a partitioned layout such as block-device-mbr, -gpt or -efi")
    runner.require_tools(required_tools(plan), "installing the bootloader")
    missing = []
    if want_bios and not (grub_lib / "i386-pc" / "boot.img").exists():
        missing.append(("i386-pc", "grub-pc-bin"))
    if want_uefi and not (grub_lib / "x86_64-efi" / "linux.mod").exists():
        missing.append(("x86_64-efi", "grub-efi-amd64-bin"))
    if missing:
        raise PreflightError(
            "GRUB modules are missing: " + ", ".join(f"{grub_lib}/{d} (Debian package {p})"
                                                      for d, p in missing),
            hint="apt-get install " + " ".join(p for _, p in missing))
    return want_bios, want_uefi


def install(raw: Path, plan: DiskPlan, *, options: BootOptions | None = None,
            grub_lib: Path = GRUB_LIB, bios_enabled: bool = True,
            uefi_enabled: bool = True) -> InstallResult:
    """Make the image bootable by BIOS and/or UEFI, as its layout allows."""
    start = time.monotonic()
    raw = Path(raw)
    want_bios, want_uefi = preflight(plan, grub_lib=grub_lib)
    want_bios &= bios_enabled
    want_uefi &= uefi_enabled
    boot = plan.boot_fs
    if boot is None or not boot.fs_uuid:
        raise BlockDeviceError("no filesystem holds /boot, or its UUID is unknown")
    separate = boot is not plan.root_fs
    cfg_text = early_config(boot.fs_uuid, separate, options)
    result = InstallResult(bios=False, uefi=False, seconds=0.0)
    with tempfile.TemporaryDirectory(prefix="dib-grub-", dir=raw.parent) as tmp:
        work = Path(tmp)
        cfg = work / "early.cfg"
        cfg.write_text(cfg_text)
        prefix = "/grub" if separate else "/boot/grub"
        if want_bios:
            core = work / "core.img"
            runner.run(["grub-mkimage", "-O", "i386-pc", "-d", str(grub_lib / "i386-pc"),
                        "-o", str(core), "-c", str(cfg), "-p", prefix, *BIOS_MODULES],
                       what="grub-mkimage (BIOS core image)")
            lba, capacity = plan.bios_embed_area()  # type: ignore[misc]
            boot_img = (grub_lib / "i386-pc" / "boot.img").read_bytes()
            core_bytes = core.read_bytes()
            bios.embed(raw, boot_img, core_bytes, lba, capacity)
            result.bios, result.core_img_bytes = True, len(core_bytes)
        if want_uefi:
            efi = work / "BOOTX64.EFI"
            runner.run(["grub-mkimage", "-O", "x86_64-efi", "-d",
                        str(grub_lib / "x86_64-efi"), "-o", str(efi), "-c", str(cfg),
                        "-p", prefix, *EFI_MODULES], what="grub-mkimage (UEFI image)")
            esp = plan.esp_fs
            assert esp is not None
            image = f"{raw}@@{esp.offset}"
            env = mtools_env()
            for directory in ("::/EFI", "::/EFI/BOOT"):
                probe = runner.run(["mdir", "-i", image, directory], env=env, check=False)
                if not probe.ok:
                    runner.run(["mmd", "-i", image, directory], env=env,
                               what="mmd (EFI directory on the ESP)")
            runner.run(["mcopy", "-o", "-i", image, str(efi), "::/EFI/BOOT/BOOTX64.EFI"],
                       env=env, what="mcopy (BOOTX64.EFI onto the ESP)")
            result.uefi, result.efi_bytes = True, efi.stat().st_size
    result.seconds = time.monotonic() - start
    return result
