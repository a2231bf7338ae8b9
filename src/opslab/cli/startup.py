"""What the ``opslab`` command does first, so that it starts fast: pydantic answers "no plugins" without
looking for any; a long-lived command sets itself up with the cyclic GC paused (``setting_up``).

pydantic asks its plugin loader (``pydantic.plugin._loader``) for plugins when it builds its first model;
the loader imports ``importlib.metadata`` and scans the entry points of every installed distribution: a
lab run's start-up spent ~20 ms importing it and ~15 ms scanning a virtualenv of 200 packages, more than
on its own experiment's models. The command's models want no plugins, and ``PYDANTIC_DISABLE_PLUGINS``
would reach every child process too."""

from __future__ import annotations

import gc
import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PLUGIN_LOADER = "pydantic.plugin._loader"


class _NoPlugins(types.ModuleType):
    """The loader as the command has it. A name it does not have (a newer pydantic's) comes from the real
    loader, which then replaces it."""

    @staticmethod
    def get_plugins() -> tuple[()]:
        return ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # what the import system asks of any module (``__path__`` …)
            raise AttributeError(name)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def without_pydantic_plugins() -> None:
    loaded = sys.modules.get(PLUGIN_LOADER)
    if loaded is None:
        sys.modules[PLUGIN_LOADER] = _NoPlugins(PLUGIN_LOADER)
    elif isinstance(loaded, _NoPlugins):  # in place already
        return
    elif getattr(loaded, "_plugins", {}) is None:  # already loaded, nothing scanned yet: none to find
        loaded._plugins = {}  # type: ignore[attr-defined]


@contextmanager
def setting_up() -> Iterator[None]:
    """A long-lived command's set-up (``opslab serve`` importing and building the service, ``opslab
    worker`` its runtime) with the cyclic GC paused: imports make many objects and no garbage, and the
    collector walking them again and again cost ~13 % of the service's start-up. What the set-up made then
    lives as long as the process: it is frozen, out of the collector's sight, and the collector resumes as
    it was."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
