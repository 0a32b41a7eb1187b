"""Plugin lookup through stevedore entry points, with a built-in fallback.

When dib is installed, its own plugins come from its entry points like any
third-party plugin.  Running from a source checkout (the unit tests) there
are no entry points, so the built-in table is used; names found through
entry points are added to (or override) the built-ins.
"""
from __future__ import annotations

import difflib
import logging
from typing import Callable, Generic, Mapping, TypeVar

LOG = logging.getLogger(__name__)
T = TypeVar("T")


class PluginRegistry(Generic[T]):
    def __init__(self, group: str, builtins: Callable[[], Mapping[str, T]]) -> None:
        self.group = group
        self._builtins = builtins
        self._plugins: dict[str, T] | None = None

    def _load(self) -> dict[str, T]:
        if self._plugins is None:
            plugins: dict[str, T] = dict(self._builtins())
            try:
                from stevedore import ExtensionManager
                manager = ExtensionManager(namespace=self.group, invoke_on_load=False,
                                           on_load_failure_callback=self._failed)
                for ext in manager:
                    plugins[ext.name] = ext.plugin
            except ImportError:
                LOG.debug("stevedore not importable; using built-in %s plugins", self.group)
            self._plugins = plugins
        return self._plugins

    @staticmethod
    def _failed(manager, entrypoint, exc) -> None:  # pragma: no cover - diagnostic
        LOG.warning("could not load plugin %s: %s", entrypoint, exc)

    def names(self) -> list[str]:
        return sorted(self._load())

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def get(self, name: str) -> T | None:
        return self._load().get(name)

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""
