"""Which page comes from which renderer; writing them and finding the stale ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opslab.docgen.api_reference import render_api
from opslab.docgen.configuration import render_configuration

GENERATED_PAGES: dict[str, Callable[[], str]] = {
    "configuration.md": render_configuration,
    "api.md": render_api,
}


def stale_pages(docs_dir: Path) -> list[str]:
    """The generated pages whose committed text differs from what the code renders now."""
    return [
        name
        for name, render in GENERATED_PAGES.items()
        if not (docs_dir / name).is_file() or (docs_dir / name).read_text(encoding="utf-8") != render()
    ]


def write_pages(docs_dir: Path) -> list[Path]:
    written = []
    for name, render in GENERATED_PAGES.items():
        path = docs_dir / name
        path.write_text(render(), encoding="utf-8")
        written.append(path)
    return written
