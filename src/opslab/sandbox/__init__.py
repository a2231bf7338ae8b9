"""The demo world: a target service with flags and faults for the canary (and, later, the responder)."""

from opslab.sandbox.target import Flags, LatencyModel, create_target_app

__all__ = ["Flags", "LatencyModel", "create_target_app"]
