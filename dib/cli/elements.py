"""dib elements list|show|graph|doc: the element catalogue, for humans."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dib.elements import HOOK_PHASE_NAMES, discover, resolve, shipped_elements_dir
from dib.elements.resolve import with_build_defaults
from dib.config.build import host_arch


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("elements", help="list, show, graph and document elements")
    sub = parser.add_subparsers(dest="elements_command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="every element on the search path")
    show = sub.add_parser("show", help="one element: path, deps, provides, hooks, packages")
    show.add_argument("name", metavar="ELEMENT")
    graph = sub.add_parser("graph", help="the dependency graph as Graphviz DOT")
    graph.add_argument("names", nargs="+", metavar="ELEMENT")
    graph.add_argument("-n", action="store_true", dest="skip_base",
                       help="do not add the base element")
    doc = sub.add_parser(
        "doc", help="render the element reference: one page per element and an index",
        description="Render one reStructuredText page per element (its README.rst, "
        "element-deps, element-provides, hooks and the DIB_* variables it reads) and an "
        "index. With --check, write nothing and exit 1 naming every page that is missing "
        "or stale.")
    doc.add_argument("paths", nargs="*", metavar="ELEMENT_PATH",
                     help="element directories or directories of elements (default: the "
                          "elements shipped with dib)")
    doc.add_argument("-o", "--output", default="docs/elements", metavar="DIR",
                     help="where the pages go (default: docs/elements)")
    doc.add_argument("--check", action="store_true",
                     help="write nothing; fail if a page is missing or stale")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if args.elements_command == "doc":
        return doc_main(args)
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


def doc_main(args: argparse.Namespace) -> int:
    from dib.errors import ConfigError
    from dib.testing.lint.paths import collect_elements
    from dib.testing.reference import check_pages, render_pages, write_pages
    paths = [Path(p) for p in args.paths] or [shipped_elements_dir()]
    for path in paths:
        if not path.is_dir():
            raise ConfigError(f"dib elements doc: '{path}' is not a directory",
                              hint="give element directories or directories of elements")
    elements = collect_elements(paths)
    if not elements:
        raise ConfigError(f"dib elements doc: no elements in {', '.join(map(str, paths))}",
                          hint="give element directories or directories of elements")
    pages = render_pages(elements)
    out_dir = Path(args.output)
    if args.check:
        problems = check_pages(pages, out_dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            again = " ".join(["dib elements doc", "-o", str(out_dir), *args.paths])
            print(f"dib elements doc: {len(problems)} page(s) out of date; run: {again}",
                  file=sys.stderr)
            return 1
        print(f"dib elements doc: {len(pages)} page(s) in {out_dir} are up to date")
        return 0
    touched = write_pages(pages, out_dir)
    print(f"dib elements doc: {len(elements)} element(s); {len(touched)} page(s) written "
          f"or removed in {out_dir}")
    return 0
