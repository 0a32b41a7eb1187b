"""Dependency resolution with DIB's semantics, in a deterministic order.

Breadth-first from the requested names, following element-deps in file
order; virtual names from element-provides satisfy dependencies; cycles and
self-dependencies are fine. The result lists real elements in the order they
were first reached, so it is the same on every run.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Sequence

from dib.elements.discovery import ElementIndex, unknown_element
from dib.elements.model import Element
from dib.errors import ElementError

OPERATING_SYSTEM = "operating-system"


@dataclass(frozen=True)
class Resolution:
    requested: tuple[str, ...]
    elements: tuple[Element, ...]
    provided_by: dict[str, str] = field(default_factory=dict)  # virtual name → provider

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.elements]

    def __contains__(self, name: str) -> bool:
        return name in self.names or name in self.provided_by

    def get(self, name: str) -> Element | None:
        return next((e for e in self.elements if e.name == name), None)


def resolve(requested: Sequence[str], index: ElementIndex) -> Resolution:
    if not requested:
        raise ElementError("no elements given",
                           hint="name at least an operating system element, e.g. debian-minimal")
    reached: dict[str, None] = dict.fromkeys(requested)
    queue = collections.deque((name, None) for name in requested)
    provided_by: dict[str, str] = {}
    while queue:
        name, wanted_by = queue.popleft()
        if name in provided_by:
            continue
        if name not in index:
            raise unknown_element(name, index.names(), wanted_by=wanted_by)
        element = index[name]
        for virtual in element.provides:
            other = provided_by.get(virtual)
            if other is not None and other != name:
                raise ElementError(
                    f"'{virtual}' is provided by both '{other}' and '{name}'",
                    hint=f"use only one of '{other}' and '{name}'")
            provided_by[virtual] = name
        for dep in element.deps:
            if dep not in reached and dep not in provided_by:
                queue.append((dep, name))
            reached.setdefault(dep, None)
    clashes = [name for name in requested if name in provided_by]
    if clashes:
        name = clashes[0]
        raise ElementError(
            f"element '{name}' was requested, but '{provided_by[name]}' already provides "
            f"'{name}'", hint=f"drop '{name}' or '{provided_by[name]}' from the element list")
    if OPERATING_SYSTEM not in provided_by:
        raise ElementError("no element provides 'operating-system'",
                           hint="include an operating system element such as debian-minimal")
    elements = tuple(index[name] for name in reached if name not in provided_by)
    return Resolution(tuple(requested), elements, provided_by)


def with_build_defaults(requested: Sequence[str], *, arch: str, skip_base: bool,
                        ramdisk_element: str | None = None) -> list[str]:
    """The names disk-image-create adds before resolving, as DIB does:
    a block-device layout for ``vm`` when none is given, then ``base`` first
    (unless -n), and for ramdisk builds the ramdisk element before that."""
    names = list(requested)
    if "vm" in names and not any(n.startswith("block-device-") for n in names):
        names.append("block-device-efi" if arch == "arm64" else "block-device-mbr")
    if not skip_base and "base" not in names:
        names.insert(0, "base")
    if ramdisk_element and ramdisk_element not in names:
        names.insert(0, ramdisk_element)
    return names


@dataclass(frozen=True)
class Reached:
    """Why an element depends on a changed one: ``via`` is the element it
    depends on (a changed one or another dependant), ``name`` the word in its
    element-deps that leads there (``via`` itself, or a name ``via`` provides)."""

    via: str
    name: str

    def describe(self) -> str:
        if self.name == self.via:
            return f"depends on {self.via}"
        return f"depends on {self.via} (through '{self.name}')"


def dependants(names: Sequence[str], index: ElementIndex) -> dict[str, Reached]:
    """The reverse closure of ``names`` over ``index``: every other element that
    depends on one of them, directly or through other elements, by name in
    element-deps or by a name one of them lists in element-provides.

    ``names`` may hold elements that are no longer in the index (deleted):
    whatever still names them in element-deps is a dependant. The result is
    in breadth-first order, so the nearest reason is the one kept.
    """
    providers: dict[str, list[str]] = collections.defaultdict(list)
    for name in index.names():
        for virtual in index[name].provides:
            providers[virtual].append(name)
    # target element → [(dependant, the name in its element-deps)]
    users: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for name in index.names():
        for dep in index[name].deps:
            for target in dict.fromkeys([dep, *providers.get(dep, [])]):
                users[target].append((name, dep))
    found: dict[str, Reached] = {}
    queue = collections.deque(dict.fromkeys(names))
    while queue:
        target = queue.popleft()
        for user, dep in users.get(target, []):
            if user in names or user in found:
                continue
            found[user] = Reached(target, dep)
            queue.append(user)
    return found
