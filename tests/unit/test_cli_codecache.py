"""The start-up's code cache: generated code compiled once, the same behaviour from the cached code, a
cache that cannot be trusted or read is an empty one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

# Defines, after ``install``, what the command's imports generate: dataclasses (frozen too), a namedtuple,
# forward references; prints what the cache compiled and how they behave.
PROGRAM = """
    import dataclasses, typing
    from collections import namedtuple
    from opslab.cli import codecache
    codecache.install("test")

    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: "tuple[str, ...]" = ()

    p = Point(1)
    assert p == Point(1) and p != Point(2) and hash(p) == hash(Point(1)), p
    assert repr(p) == "Point(x=1, y=())", repr(p)
    try:
        p.x = 2
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("a frozen dataclass took an assignment")
    # The annotations of the generated __init__ are the types themselves: the cache compiles with the
    # flags of dataclasses' own exec, not with this module's ``annotations`` future.
    assert Point.__init__.__annotations__["x"] is int, Point.__init__.__annotations__
    Pair = namedtuple("Pair", "a b")
    assert Pair(1, b=2) == (1, 2)
    assert typing.get_type_hints(Point)["y"] == tuple[str, ...]
    assert typing.ForwardRef("dict[str, int]")._evaluate(globals(), None, frozenset()) == dict[str, int]
    print(codecache._cache.added)
    codecache.save()
"""


def _run(cache: Path, program: str = PROGRAM, *argv: str) -> int:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


def _files(cache: Path) -> list[Path]:
    return sorted((cache / "opslab").glob("code-*.marshal"))


def test_generated_code_is_compiled_once_then_taken_from_the_cache(tmp_path: Path) -> None:
    assert _run(tmp_path) > 0  # compiled, and saved
    (saved,) = _files(tmp_path)
    assert saved.stat().st_mode & 0o077 == 0
    assert (tmp_path / "opslab").stat().st_mode & 0o777 == 0o700
    assert _run(tmp_path) == 0  # the same behaviour, nothing compiled again
    assert _files(tmp_path) == [saved]


def test_a_torn_or_foreign_cache_file_is_an_empty_cache(tmp_path: Path) -> None:
    _run(tmp_path)
    (saved,) = _files(tmp_path)
    whole = saved.read_bytes()
    saved.write_bytes(whole[: len(whole) // 2])  # torn
    assert _run(tmp_path) > 0
    saved.write_bytes(b"\0\0\0\0" + whole[4:])  # another interpreter's
    assert _run(tmp_path) > 0
    assert _run(tmp_path) == 0  # written whole again by the run before


def test_a_cache_folder_others_may_write_to_is_not_used(tmp_path: Path) -> None:
    _run(tmp_path)
    folder = tmp_path / "opslab"
    folder.chmod(0o777)  # anyone could swap the code in it
    try:
        assert _run(tmp_path) > 0
        assert _run(tmp_path) > 0  # nor written to
    finally:
        folder.chmod(0o700)


def test_a_process_forked_after_the_start_does_not_write_the_cache(tmp_path: Path) -> None:
    program = PROGRAM.replace(
        "    print(codecache._cache.added)\n    codecache.save()\n",
        textwrap.indent(
            textwrap.dedent(
                """
                import os
                pid = os.fork()
                if pid == 0:
                    codecache.save()  # a lab worker's copy of the cache
                    os._exit(0)
                os.waitpid(pid, 0)
                print(len(list((codecache._cache.path.parent).glob("code-*"))))
                """
            ),
            "    ",
        ),
    )
    assert _run(tmp_path, program) == 0


def test_each_command_keeps_its_own_file(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    for argv in (["version"], ["lab", "--help"], ["no-such-command"]):
        subprocess.run(
            [sys.executable, "-m", "opslab", *argv], capture_output=True, env=env, timeout=120, check=False
        )
    assert sorted(p.name.rsplit("-", 1)[-1] for p in _files(tmp_path)) == [
        "lab.marshal",
        "opslab.marshal",
        "version.marshal",
    ]


def test_the_root_commands_are_the_services_own() -> None:
    from opslab.cli import ROOT_COMMANDS
    from opslab.cli.app import _capability_commands, build_app

    names = {
        info.name or (info.callback.__name__ if info.callback else "")
        for info in build_app().registered_commands
    }
    names |= {info.name for info in build_app().registered_groups if info.name}
    assert names - set(_capability_commands()) == set(ROOT_COMMANDS)


def test_a_process_keeps_a_bounded_cache_and_saves_what_it_used(tmp_path: Path) -> None:
    program = """
        import dataclasses
        from opslab.cli import codecache
        codecache.MAX_ENTRIES = 8
        codecache.install("test")
        for i in range(40):  # a long-lived process generating code as it runs
            dataclasses.make_dataclass(f"C{i}", [(f"f{i}", int)])
        assert len(codecache._cache.codes) == 16, len(codecache._cache.codes)
        codecache.save()
        print(len(codecache._load(codecache._cache.path)))
    """
    assert _run(tmp_path, program) == 8


# A module that compiles its patterns as it is imported, and a pattern built as the program runs; prints how
# many entries the cache added, after checking each pattern against one compiled without the cache.
PATTERNS = """
    import re, sys
    from opslab.cli import codecache
    codecache.install("test")
    sys.path.insert(0, sys.argv[1])
    import patterns
    for name in ("WORD", "RAW"):
        cached = getattr(patterns, name)
        fresh = codecache._re_compile(cached.pattern, cached.flags)
        assert (cached.pattern, cached.flags, cached.groups, cached.groupindex) == (
            fresh.pattern, fresh.flags, fresh.groups, fresh.groupindex
        ), name
    m = patterns.WORD.fullmatch("Depth = 12")
    assert m is not None and m.groupdict() == {"key": "Depth", "value": "12"}, m
    assert patterns.WORD.fullmatch("depth = x") is None
    assert patterns.RAW.findall(b"a\\0xb\\0y") == [b"x", b"y"]
    assert re.compile("runtime-" + sys.argv[2]).match("runtime-" + sys.argv[2])  # from input: never kept
    kept = [k[3] for k in codecache._cache.codes if k[0] == "re"]
    assert not any(isinstance(p, str) and p.startswith("runtime-") for p in kept), kept
    assert patterns.WORD.pattern in kept and patterns.RAW.pattern in kept
    print(codecache._cache.added)
    codecache.save()
"""

MODULE = '''
import re
WORD = re.compile(r"""(?P<key>[a-z]+) \\s* = \\s* (?P<value>\\d+)  # a name, a number""", re.VERBOSE | re.I)
RAW = re.compile(rb"\\0(.)")
'''


def _run_patterns(cache: Path, modules: Path, word: str) -> int:
    modules.mkdir(exist_ok=True)
    (modules / "patterns.py").write_text(MODULE)
    return _run(cache, PATTERNS, str(modules), word)


def test_patterns_compiled_as_a_module_is_imported_come_from_the_cache(tmp_path: Path) -> None:
    assert _run_patterns(tmp_path, tmp_path / "modules", "first") == 2  # the module's two patterns
    assert _run_patterns(tmp_path, tmp_path / "modules", "second") == 0  # both from the cache, the same


def test_a_pattern_program_the_engine_refuses_is_compiled_afresh(tmp_path: Path) -> None:
    import marshal

    _run_patterns(tmp_path, tmp_path / "modules", "first")
    (saved,) = _files(tmp_path)
    magic, codes = saved.read_bytes()[:4], marshal.loads(saved.read_bytes()[4:])
    for key, parts in codes.items():
        if key[0] == "re":
            codes[key] = (parts[0], [0], *parts[2:])  # not a program: the engine's check refuses it
    saved.write_bytes(magic + marshal.dumps(codes))
    assert _run_patterns(tmp_path, tmp_path / "modules", "second") == 2  # right all the same, kept anew
    assert _run_patterns(tmp_path, tmp_path / "modules", "third") == 0
