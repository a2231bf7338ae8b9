"""The user's cache folder for what opslab builds once and keeps (the native zygote, the start-up's code):
``$XDG_CACHE_HOME/opslab``, else ``~/.cache/opslab``, made 0700 and used only while it is this user's
alone — what is cached there is executed, so a folder another user could write to is not used."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME", "")  # noqa: TID251 - the XDG base directory, not opslab's
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "opslab"


def private_folder(path: Path) -> str | None:
    """``path`` made (0700) if missing; why it cannot be used when it is not this user's alone, else None.
    OSError when it cannot be made."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = path.stat()
    if folder.st_uid != os.getuid() or folder.st_mode & 0o022:  # another user could swap what is in it
        return f"{path} is not this user's alone"
    return None
