"""The service on a thread of this process (``opslab.serving``), named where the API's users look for it."""

from __future__ import annotations

from opslab.serving import ServerThread, free_port

__all__ = ["ServerThread", "free_port"]
