"""The code the command's start-up generates, compiled once per machine and Python instead of at every
start — as the interpreter keeps its modules' bytecode in ``__pycache__``.

Python writes some functions as source text at run time and compiles them there: every dataclass's
``__init__``, ``__repr__``, ``__eq__`` (and a frozen one's ``__setattr__``, ``__delattr__``, ``__hash__``)
through ``exec``, every string annotation that typing turns into a ``ForwardRef`` through ``compile``, every
namedtuple's ``__new__`` through ``eval``. The command's imports (its own dataclasses, pydantic's and
annotated-types', pydantic's forward references) generate several hundred such snippets; compiling them
was ~15 % of a lab run's start-up (measured on a 2-core machine: a one-trial run 604 -> 515 ms, medians of
10 alternated). ``install`` gives those three modules (and only them) an ``exec``, ``compile`` and
``eval`` that look the text up first: the same text, compiled with the same flags (none: none of the three
has a ``__future__`` import), is the same code object, so a cached one behaves exactly as a fresh one.

Regular expressions alike: the modules' own (PyYAML's reader, tokenize's, ``platform``'s …), ~40 of them at
a lab run's start, were compiled by ``re``'s compiler in Python — ~20 ms of every start on that machine,
PyYAML's character class alone 6 ms. The cache keeps what that compiler hands the regex engine (its
program, flags and groups: ``_sre.compile``'s arguments) and hands the same again, so the pattern is the
one a fresh compile makes; the engine checks the program as it takes it, and anything it refuses is
compiled afresh. Only patterns compiled while a module is imported are kept (its constants): never one a
command builds from its input as it runs.

The cache is a file per command (``opslab lab …`` one, ``opslab serve`` another: the service's
start-up generates thrice what a lab run's does, and each start loads its whole file) in the user's
cache folder (``user_cache``), by Python's bytecode tag and optimisation level, written once a command
generated text it did not hold (``save``: at exit, or by a command that ends with ``os._exit``) —
atomically, so commands that start at once each read a whole file.
A file that cannot be read, or a folder that is not this user's alone, is an empty cache; a file that
outgrew ``MAX_ENTRIES`` starts again from what the command used; a process keeps at most twice that
(the service runs for days: code it generates later is compiled as without the cache)."""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]
import atexit
import builtins
import collections
import contextlib
import dataclasses
import importlib.util
import marshal
import os
import re
import sys
import typing
from pathlib import Path
from re import _compiler, _parser  # type: ignore[attr-defined]
from types import CodeType
from typing import Any

from opslab.user_cache import private_folder, user_cache_dir

MAX_ENTRIES = 2048
_COMMAND = re.compile(r"[a-z][a-z0-9-]{0,31}")
_exec, _compile, _eval = builtins.exec, builtins.compile, builtins.eval
_re_compile = _compiler.compile
_IMPORTING = "<frozen importlib._bootstrap>"  # the import system's frames: a module is being imported


class _Cache:
    def __init__(self, path: Path) -> None:
        self.path, self.pid = path, os.getpid()
        self.codes: dict[tuple[Any, ...], Any] = _load(path)
        self.used: dict[tuple[Any, ...], None] = {}  # in the order first asked for
        self.added = 0

    def code(self, source: str, mode: str) -> CodeType:
        key = (mode, source)
        found = self.codes.get(key)
        if found is None:
            # The flags of the module the text comes from (dataclasses, typing, collections: none), not
            # this module's ``annotations`` future, which would turn the annotations it holds into strings.
            found = _compile(source, "<string>", mode, dont_inherit=True)
            self._add(key, found)
        self.used[key] = None
        return found

    def pattern(self, source: str | bytes, flags: int) -> Any:  # a re.Pattern
        key = ("re", _sre.MAGIC, flags, source)
        parts = self.codes.get(key)
        if parts is not None:
            try:
                made = _sre.compile(source, *parts)
            except Exception:  # noqa: BLE001 - not a program this engine takes: compiled afresh
                parts = None
        if parts is None:
            parts = _pattern_parts(source, flags)
            made = _sre.compile(source, *parts)
            self._add(key, parts)
        self.used[key] = None
        return made

    def _add(self, key: tuple[Any, ...], value: Any) -> None:
        if len(self.codes) < 2 * MAX_ENTRIES:  # else a long-lived process that generates code as it runs
            self.codes[key] = value
            self.added += 1

    def save(self) -> None:
        if not self.added or os.getpid() != self.pid:  # nothing new, or a forked worker's copy
            return
        self.added = 0
        keep = self.codes.keys() if len(self.codes) <= MAX_ENTRIES else list(self.used)[:MAX_ENTRIES]
        codes = {k: self.codes[k] for k in keep}
        import tempfile  # only by a command that generated new code: not at every start

        with contextlib.suppress(OSError):
            if private_folder(self.path.parent) is not None:
                return
            fd, temporary = tempfile.mkstemp(prefix=".code-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(importlib.util.MAGIC_NUMBER)
                    marshal.dump(codes, f)
                os.replace(temporary, self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)


_cache: _Cache | None = None


def install(command: str) -> None:
    """Cache the generated code of dataclasses, forward references and namedtuples from now on, in
    ``command``'s file (once per process; the cache is saved at exit)."""
    global _cache
    if _cache is not None:
        return
    tag = sys.implementation.cache_tag
    if tag is None or not _COMMAND.fullmatch(command):  # nothing to key the cache by
        return
    _cache = _Cache(user_cache_dir() / f"code-{tag}-o{sys.flags.optimize}-{command}.marshal")
    dataclasses.exec = _cached_exec  # type: ignore[attr-defined]
    typing.compile = _cached_compile  # type: ignore[attr-defined]
    collections.eval = _cached_eval  # type: ignore[attr-defined]
    _compiler.compile = _cached_re_compile
    atexit.register(save)


def save() -> None:
    """Write what this process compiled and the cache did not hold (a command ending with ``os._exit``
    calls this first)."""
    if _cache is not None:
        _cache.save()


def _load(path: Path) -> dict[tuple[Any, ...], Any]:
    try:
        if private_folder(path.parent) is not None:
            return {}
        data = path.read_bytes()
    except OSError:
        return {}
    magic = importlib.util.MAGIC_NUMBER
    if data[: len(magic)] != magic:
        return {}
    try:
        codes = marshal.loads(data[len(magic) :])
    except (EOFError, ValueError, TypeError):
        return {}
    return codes if isinstance(codes, dict) else {}


def _cached(run: Any, mode: str) -> Any:
    """``exec`` or ``eval`` (``run``) taking a text's code from the cache; what is not a text with its own
    namespace runs as ``run`` would run it (no namespace: the caller's)."""

    def cached(source: Any, globals: Any = None, locals: Any = None, /) -> Any:  # noqa: A002
        if type(source) is not str or type(globals) is not dict:
            if globals is None:
                caller = sys._getframe(1)
                globals, locals = caller.f_globals, caller.f_locals  # noqa: A001
            return run(source, globals, locals)
        assert _cache is not None  # installed only with a cache
        return run(_cache.code(source, mode), globals, locals)

    return cached


_cached_exec, _cached_eval = _cached(_exec, "exec"), _cached(_eval, "eval")


def _cached_compile(
    source: Any,
    filename: Any,
    mode: str,
    flags: int = 0,
    dont_inherit: bool = False,
    optimize: int = -1,
    **kwargs: Any,
) -> Any:
    if (
        _cache is None
        or type(source) is not str
        or filename != "<string>"
        or flags
        or optimize != -1
        or kwargs
    ):
        return _compile(source, filename, mode, flags, True, optimize, **kwargs)
    return _cache.code(source, mode)


def _cached_re_compile(p: Any, flags: int = 0) -> Any:
    """``re``'s compiler (``re._compiler.compile``), through the cache for a pattern text a module compiles
    as it is imported."""
    if (
        _cache is None
        or type(p) not in (str, bytes)
        or type(flags) is not int
        or flags & _compiler.SRE_FLAG_DEBUG
        or not _importing(sys._getframe(1))
    ):
        return _re_compile(p, flags)
    try:
        return _cache.pattern(p, flags)
    except re.error:
        raise
    except Exception:  # noqa: BLE001 - an engine whose compiler works otherwise: as if uncached
        return _re_compile(p, flags)


def _importing(frame: Any) -> bool:
    while frame is not None:
        if frame.f_code.co_filename == _IMPORTING:
            return True
        frame = frame.f_back
    return False


def _pattern_parts(source: str | bytes, flags: int) -> tuple[Any, ...]:
    """What ``re._compiler.compile`` hands ``_sre.compile`` after the pattern itself, as plain values
    (its opcodes are ``int`` subclasses)."""
    parsed = _parser.parse(source, flags)
    code = _compiler._code(parsed, flags)
    groupindex = dict(parsed.state.groupdict)
    indexgroup: list[str | None] = [None] * parsed.state.groups
    for name, index in groupindex.items():
        indexgroup[index] = name
    return (
        int(flags | parsed.state.flags),
        [int(c) for c in code],
        parsed.state.groups - 1,
        groupindex,
        tuple(indexgroup),
    )
