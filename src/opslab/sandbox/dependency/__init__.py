"""The target's dependency: a tiny pricing service that can be crashed for real (``POST /admin/crash``)."""

from opslab.sandbox.dependency.app import create_dependency_app

__all__ = ["create_dependency_app"]
