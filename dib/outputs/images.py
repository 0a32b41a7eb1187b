"""Disk image outputs: raw, qcow2, vhd."""
from __future__ import annotations

import os
import struct
import uuid
from pathlib import Path

from dib import runner
from dib.outputs.base import Output, OutputContext


class Raw(Output):
    name = "raw"
    needs_disk = True
    copies_tree_times = False
    extension = "raw"

    def tools(self):
        return [("cp", "coreutils")]

    def produce(self, ctx: OutputContext) -> list[Path]:
        self._need(ctx)
        dest = self.output_path(ctx)
        assert ctx.raw is not None
        if Path(ctx.raw).resolve() == dest.resolve():
            return [dest]
        if ctx.move_raw:
            try:
                os.replace(ctx.raw, dest)
                return [dest]
            except OSError:
                pass
        runner.run(["cp", "--sparse=always", str(ctx.raw), str(dest)], what="copy raw image")
        return [dest]


def _merge_options(base: list[str], user: str | None) -> str:
    opts: dict[str, str] = {}
    for item in base + ([p for p in user.split(",") if p] if user else []):
        key, _, value = item.partition("=")
        opts[key.strip()] = value.strip()
    if opts.get("compat") == "0.10":
        opts.pop("compression_type", None)   # zstd clusters need compat=1.1
    return ",".join(f"{k}={v}" if v else k for k, v in opts.items())


class Qcow2(Output):
    name = "qcow2"
    needs_disk = True
    copies_tree_times = False
    extension = "qcow2"

    def tools(self):
        return [("qemu-img", "qemu-utils")]

    def argv(self, ctx: OutputContext) -> list[str]:
        assert ctx.raw is not None
        argv = ["qemu-img", "convert", "-f", "raw", "-O", "qcow2"]
        base = []
        if ctx.compress:
            argv += ["-c", "-m", "8"]
            if ctx.source_date_epoch is None:
                # out of order: faster, but clusters land wherever a
                # coroutine finishes first, so two files of one disk differ
                argv.append("-W")
            base.append("compression_type=zstd")
        options = _merge_options(base, ctx.qemu_img_options)
        if options:
            argv += ["-o", options]
        return argv + [str(ctx.raw), str(self.output_path(ctx))]

    def produce(self, ctx: OutputContext) -> list[Path]:
        self._need(ctx)
        runner.run(self.argv(ctx), what="qemu-img convert to qcow2")
        return [self.output_path(ctx)]


class Vhd(Output):
    name = "vhd"
    needs_disk = True
    copies_tree_times = False
    extension = "vhd"

    def tools(self):
        return [("qemu-img", "qemu-utils")]

    def argv(self, ctx: OutputContext) -> list[str]:
        assert ctx.raw is not None
        options = _merge_options(["subformat=fixed", "force_size"], ctx.qemu_img_options)
        return ["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", options,
                str(ctx.raw), str(self.output_path(ctx))]

    def produce(self, ctx: OutputContext) -> list[Path]:
        self._need(ctx)
        dest = self.output_path(ctx)
        runner.run(self.argv(ctx), what="qemu-img convert to vhd")
        if ctx.source_date_epoch is not None:
            settle_vhd_footers(dest, ctx.source_date_epoch, ctx.image_name.name)
        return [dest]


#: VHD times count from 2000-01-01 00:00:00 UTC
_VHD_EPOCH = 946684800
_VHD_COOKIE = b"conectix"
_VHD_ID_NAMESPACE = uuid.UUID("8a0f4c52-3d3e-4f61-a0d2-6f2b6b9f1c07")


def settle_vhd_footers(path: Path, epoch: int, name: str) -> None:
    """qemu-img writes the time of the conversion and a random unique id
    into the VHD footer (at the end, and a copy at the start of a dynamic
    disk). Set the time to ``epoch`` and the id to one derived from the
    image's name, the epoch and the disk's size, and fix the checksum."""
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        for offset in sorted({0, size - 512}):
            fh.seek(offset)
            footer = bytearray(fh.read(512))
            if footer[:8] != _VHD_COOKIE:
                continue
            disk_size = struct.unpack_from(">Q", footer, 48)[0]
            struct.pack_into(">I", footer, 24, max(0, epoch - _VHD_EPOCH))
            footer[68:84] = uuid.uuid5(_VHD_ID_NAMESPACE, f"{name}\0{epoch}\0{disk_size}").bytes
            struct.pack_into(">I", footer, 64, 0)
            struct.pack_into(">I", footer, 64, ~sum(footer) & 0xFFFFFFFF)
            fh.seek(offset)
            fh.write(footer)


