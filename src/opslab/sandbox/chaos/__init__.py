"""The chaos server (real faults through the target's and the dependency's admin routes) and the
scenarios: chaostoolkit-shaped YAML files with the ``expected`` outcome a scorer reads."""

from opslab.sandbox.chaos.app import create_chaos_app
from opslab.sandbox.chaos.breaks import FAULT_NAMES, Break
from opslab.sandbox.chaos.scenario import (
    Category,
    Expected,
    Scenario,
    load_scenario,
    load_scenarios,
    run_method,
    scenarios_folder,
)

__all__ = [
    "FAULT_NAMES",
    "Break",
    "Category",
    "Expected",
    "Scenario",
    "create_chaos_app",
    "load_scenario",
    "load_scenarios",
    "run_method",
    "scenarios_folder",
]
