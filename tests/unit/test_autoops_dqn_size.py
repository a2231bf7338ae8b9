"""What the `dqn` extra costs to download, from the wheel sizes uv.lock records (nothing is downloaded): the
packages it adds to the default environment for CPython 3.11 on Linux x86-64, each with its best wheel.
docs/autoops.md gives the figure; this keeps it true when the lock changes."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from packaging.markers import Marker
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename

from tests.conftest import ROOT

ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
LINUX_X86_64 = re.compile(r"(manylinux\d*(_\d+_\d+)?_x86_64|linux_x86_64|any)")
ABI3_PYTHONS = {f"cp3{n}" for n in range(2, 12)}


def applies(dep: dict[str, Any], extra: str = "") -> bool:
    marker = dep.get("marker")
    return marker is None or Marker(marker).evaluate({**ENVIRONMENT, "extra": extra})


def installs(tag: Tag) -> bool:
    python_ok = tag.interpreter in ("py3", "py311", "cp311") or (
        tag.abi == "abi3" and tag.interpreter in ABI3_PYTHONS
    )
    return python_ok and tag.abi in ("none", "abi3", "cp311") and bool(LINUX_X86_64.fullmatch(tag.platform))


def wheel_bytes(package: dict[str, Any]) -> int:
    sizes = [
        int(w.get("size", 0))
        for w in package.get("wheels", [])
        if any(installs(t) for t in parse_wheel_filename(w["url"].rsplit("/", 1)[-1])[3])
    ]
    return min(sizes) if sizes else 0


def closure(packages: dict[str, list[dict[str, Any]]], roots: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(name, version) of every package ``roots`` pull in, their extras' dependencies included."""
    found: set[tuple[str, str]] = set()
    extras_done: set[tuple[str, str, str]] = set()
    todo = [(d, tuple(d.get("extra", []))) for d in roots]
    while todo:
        dep, extras = todo.pop()
        candidates = packages[dep["name"]]
        package = next((p for p in candidates if p["version"] == dep.get("version")), candidates[0])
        key = (package["name"], package["version"])
        more = [d for d in package.get("dependencies", []) if applies(d)] if key not in found else []
        found.add(key)
        for extra in extras:
            if (*key, extra) not in extras_done:
                extras_done.add((*key, extra))
                more += [d for d in package.get("optional-dependencies", {}).get(extra, []) if applies(d)]
        todo += [(d, tuple(d.get("extra", []))) for d in more]
    return found


def test_the_docs_give_the_download_size_of_the_dqn_extra() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages: dict[str, list[dict[str, Any]]] = {}
    for p in lock["package"]:
        packages.setdefault(p["name"], []).append(p)
    opslab = packages["opslab"][0]
    base = closure(packages, [d for d in opslab["dependencies"] if applies(d)])
    extra = [d for d in opslab["optional-dependencies"]["dqn"] if applies(d, "dqn")]
    added = closure(packages, [d for d in opslab["dependencies"] if applies(d)] + extra) - base
    by_name = {name: p for name, versions in packages.items() for p in versions}
    size_gb = sum(wheel_bytes(by_name[name]) for name, _ in added) / 1e9
    assert "torch" in {name for name, _ in added}
    docs = (ROOT / "docs" / "autoops.md").read_text()
    said = re.search(r"the extra brings (\d+) packages .*? for ([\d.]+) GB of wheels", docs, re.S)
    assert said, "docs/autoops.md no longer gives the dqn extra's size"
    assert int(said.group(1)) == len(added) and float(said.group(2)) == round(size_gb, 1), (
        len(added),
        size_gb,
    )
