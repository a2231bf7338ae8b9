"""The HTTP service: ``create_app(settings)``, one router per capability, one exception handler."""

from opslab.api.app import create_app

__all__ = ["create_app"]
