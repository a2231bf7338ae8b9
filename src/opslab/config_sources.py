"""Where settings come from, told without building them: ``opslab.config`` loads pydantic-settings (tens of
milliseconds), which a command that only needs to know whether a variable is set at all can skip."""

from __future__ import annotations

import os
from pathlib import Path

from opslab.errors import InvalidInput


def env_file() -> Path | None:
    """The .env file settings read: ``OPSLAB_ENV_FILE`` (which must exist; ``/dev/null`` reads none), else
    ``./.env`` if present."""
    named = os.environ.get("OPSLAB_ENV_FILE", "").strip()  # noqa: TID251
    if named:
        path = Path(named).expanduser()
        if not path.exists() or path.is_dir():
            raise InvalidInput.for_field("OPSLAB_ENV_FILE", f"{named}: no such file")
        return path.resolve()
    here = Path(".env")
    return here.resolve() if here.is_file() else None


def may_be_set(variable: str) -> bool:
    """Whether the settings could give ``variable`` (``OPSLAB_URL``) a value: it is in the environment
    (in any case: settings read names without case) or a .env file could hold it."""
    wanted = variable.upper()
    return any(name.upper() == wanted for name in os.environ) or env_file() is not None  # noqa: TID251
