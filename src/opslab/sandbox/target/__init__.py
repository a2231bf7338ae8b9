"""The sandbox target: a search-like service with flags, dependency health and injected faults, whose
latency model makes a flag change's effect on p95 known; it also runs the canary's experiment on itself."""

from opslab.sandbox.target.app import create_target_app
from opslab.sandbox.target.model import Faults, Flags, LatencyModel

__all__ = ["Faults", "Flags", "LatencyModel", "create_target_app"]
