"""Disk image outputs: raw, qcow2, vhd."""
from __future__ import annotations

import os
from pathlib import Path

from dib import runner
from dib.outputs.base import Output, OutputContext


class Raw(Output):
    name = "raw"
    needs_disk = True
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
        runner.run(self.argv(ctx), what="qemu-img convert to vhd")
        return [self.output_path(ctx)]


