"""The demo world the capabilities act on, each service its own package (``target/`` today; chaos, actions
and builds to come) over one small shared app helper. It uses capabilities only through their public API."""

from opslab.sandbox.app import create_service_app, run_app
from opslab.sandbox.target import Faults, Flags, LatencyModel, create_target_app

__all__ = ["Faults", "Flags", "LatencyModel", "create_service_app", "create_target_app", "run_app"]
