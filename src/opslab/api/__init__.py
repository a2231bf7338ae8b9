"""The HTTP service: ``create_app(settings)``, one router per capability, one exception handler."""

from opslab.api.app import create_app
from opslab.api.server import ServerThread, free_port

__all__ = ["ServerThread", "create_app", "free_port"]
