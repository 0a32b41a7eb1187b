"""argparse parsers generated from the settings registry."""
from __future__ import annotations

import argparse
from typing import Any, Mapping, Sequence

from dib.config.build import BuildConfig, load_build_config, parse_value
from dib.config.settings import APPEND, COUNT, OFF_SWITCH, SETTINGS, SWITCH, Setting
from dib.errors import ConfigError


class ArgumentParser(argparse.ArgumentParser):
    """Raises ConfigError instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments"):
            message += f"; see '{self.prog} --help' for the accepted flags"
        raise ConfigError(message)


def _typed(setting: Setting):
    flag = setting.label

    def convert(text: str) -> Any:
        try:
            return parse_value(setting, text, flag)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None
    convert.__name__ = setting.name
    return convert


def add_build_arguments(parser: argparse.ArgumentParser,
                        only: Sequence[str] | None = None) -> None:
    """Every setting with a flag (or just those named in ``only``) becomes an
    option; defaults stay None so the environment and the registry's defaults
    can be merged afterwards."""
    for setting in SETTINGS:
        if not setting.flags or (only is not None and setting.name not in only):
            continue
        help_text = setting.help
        if setting.env:
            help_text += f" [env: {setting.env}]"
        common = dict(dest=setting.name, help=help_text, default=None)
        if setting.kind == SWITCH:
            parser.add_argument(*setting.flags, action="store_const",
                                const=setting.parse("1"), **common)
        elif setting.kind == OFF_SWITCH:
            parser.add_argument(*setting.flags, action="store_const",
                                const=setting.parse("0"), **common)
        elif setting.kind == COUNT:
            parser.add_argument(*setting.flags, action="count", **common)
        elif setting.kind == APPEND:
            parser.add_argument(*setting.flags, action="append", type=_typed(setting),
                                metavar=setting.metavar, **common)
        else:
            parser.add_argument(*setting.flags, type=_typed(setting),
                                metavar=setting.metavar or setting.name.upper(),
                                choices=None, **common)


def build_parser(prog: str, description: str) -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description=description)
    add_build_arguments(parser)
    parser.add_argument("elements", nargs="*", metavar="ELEMENT",
                        help="elements to build the image from")
    return parser


def config_from_args(args: argparse.Namespace, *, environ: Mapping[str, str],
                     argv: Sequence[str], ramdisk: bool = False) -> BuildConfig:
    cli_values = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    return load_build_config(cli_values, elements=list(args.elements), environ=environ,
                             argv=list(argv), ramdisk=ramdisk)
