"""The HTTP service: ``create_app(settings)`` (``settle_routes`` builds its routes ahead), one router per
capability, one exception handler."""

from opslab.api.app import create_app, settle_routes
from opslab.serving import ServerThread, free_port

__all__ = ["ServerThread", "create_app", "free_port", "settle_routes"]
