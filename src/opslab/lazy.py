"""Lazy package exports: a package whose modules are costly to import (LangGraph, SciPy, aiohttp) lists
its public names as imports under ``if TYPE_CHECKING:`` — what type checkers and the import contracts
read — and loads the module behind a name only when the name is first used:

    if TYPE_CHECKING:
        from opslab.store.runs import SqlRunRepository
    else:
        __getattr__ = lazy_exports(__name__)

So ``from opslab.store import SqlRunRepository`` imports ``opslab.store.runs`` and nothing else: a CLI
command that lists runs does not load the responder's graph library.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def lazy_exports(package: str) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: each name its ``TYPE_CHECKING`` block imports.

    A name that is also the name of the submodule it comes from (``responder.investigate``, the function
    of ``responder/investigate.py``) is imported at once: importing the submodule binds its name on the
    package to the module, which would hide the function from ``__getattr__``."""
    table = _exports(package)
    here = sys.modules[package]
    for name, (module, original) in table.items():
        if module == f"{package}.{name}":
            setattr(here, name, getattr(importlib.import_module(module), original))

    def __getattr__(name: str) -> Any:
        found = table.get(name)
        if found is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, original = found
        value = getattr(importlib.import_module(module), original)
        setattr(sys.modules[package], name, value)  # found directly from now on
        return value

    return __getattr__


def _exports(package: str) -> dict[str, tuple[str, str]]:
    """Name -> (module, name there), from ``from M import a, b as c`` under ``if TYPE_CHECKING:``."""
    path = sys.modules[package].__file__
    assert path is not None
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    found: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                    for alias in stmt.names:
                        found[alias.asname or alias.name] = (stmt.module, alias.name)
    return found


def lazy_module(name: str) -> Any:
    """A stand-in for the module ``name`` that imports it when one of its attributes is first used: a
    module whose functions need NumPy can be imported by one that uses only its others (``opslab.judge``:
    a lab run of one variant computes a Wilson interval, not a bootstrap) without loading it. Type
    checkers are given the module itself (``if TYPE_CHECKING: import numpy as np``)."""
    return _LazyModule(name)


class _LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            # Through the import system, never straight from sys.modules: another thread may be importing
            # the module right now, and only the import system waits for it to finish.
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)
