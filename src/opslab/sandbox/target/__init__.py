"""The sandbox target: a search-like service with flags, dependency health and injected faults, whose
latency model makes a flag change's effect on p95 known; it also runs the canary's experiment on itself,
and serves the orders work path (``/api/v1/*``, ``/admin/*``) the incident responder is drilled on."""

from opslab.sandbox.target.app import create_target_app
from opslab.sandbox.target.model import Faults, Flags, LatencyModel
from opslab.sandbox.target.ops import OpsOptions

__all__ = ["Faults", "Flags", "LatencyModel", "OpsOptions", "create_target_app"]
