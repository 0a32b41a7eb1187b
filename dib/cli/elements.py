"""dib elements list|show|graph: the element catalogue, for humans."""
from __future__ import annotations

import argparse
import os
import sys

from dib.elements import HOOK_PHASE_NAMES, discover, resolve
from dib.elements.resolve import with_build_defaults
from dib.config.build import host_arch


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("elements", help="list, show and graph elements")
    sub = parser.add_subparsers(dest="elements_command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="every element on the search path")
    show = sub.add_parser("show", help="one element: path, deps, provides, hooks, packages")
    show.add_argument("name", metavar="ELEMENT")
    graph = sub.add_parser("graph", help="the dependency graph as Graphviz DOT")
    graph.add_argument("names", nargs="+", metavar="ELEMENT")
    graph.add_argument("-n", action="store_true", dest="skip_base",
                       help="do not add the base element")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    index = discover(os.environ)
    out = sys.stdout
    if args.elements_command == "list":
        width = max((len(n) for n in index.names()), default=0)
        for name in index.names():
            out.write(f"{name:<{width}}  {index[name].path}\n")
    elif args.elements_command == "show":
        out.write(show_text(index.get(args.name)))
    else:
        names = with_build_defaults(args.names, arch=host_arch(), skip_base=args.skip_base)
        out.write(graph_dot(resolve(names, index)))
    return 0


def show_text(element) -> str:
    element.load_all()
    lines = [f"name:     {element.name}", f"path:     {element.path}",
             f"deps:     {' '.join(element.deps) or '-'}",
             f"provides: {' '.join(element.provides) or '-'}"]
    for phase in HOOK_PHASE_NAMES:
        hooks = element.hooks(phase)
        if hooks:
            shown = [h.name if h.runs else f"{h.name} (not run: {h.skipped_reason})"
                     for h in hooks]
            lines.append(f"{phase}.d: {', '.join(shown)}")
    if element.environment_files:
        lines.append("environment.d: " + ", ".join(p.name for p in element.environment_files))
    if element.package_installs:
        lines.append("packages: " + " ".join(sorted(element.package_installs)))
    if element.block_device_files:
        lines.append("block-device: " + ", ".join(sorted(element.block_device_files)))
    if element.test_elements:
        lines.append("test-elements: " + ", ".join(element.test_elements))
    return "\n".join(lines) + "\n"


def graph_dot(resolution) -> str:
    names = set(resolution.names)
    lines = ["digraph elements {", "  rankdir=LR;"]
    for element in resolution.elements:
        shape = "box" if element.name in resolution.requested else "ellipse"
        lines.append(f'  "{element.name}" [shape={shape}];')
    for virtual, provider in sorted(resolution.provided_by.items()):
        lines.append(f'  "{virtual}" [shape=diamond];')
        lines.append(f'  "{provider}" -> "{virtual}" [style=dashed, label="provides"];')
    for element in resolution.elements:
        for dep in element.deps:
            if dep in names or dep in resolution.provided_by:
                lines.append(f'  "{element.name}" -> "{dep}";')
    lines.append("}")
    return "\n".join(lines) + "\n"
