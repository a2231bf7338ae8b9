"""The demo world the capabilities act on, each service its own package over one small shared app helper:
``target/`` (the canary's search service and the responder's orders service), ``dependency/`` (its pricing
service), ``chaos/`` (faults and scenarios), ``actions/`` (the remediations a responder may take), and the
``supervisor`` that runs a whole world. It uses capabilities only through their public API."""

import importlib
from typing import TYPE_CHECKING, Any

from opslab.sandbox.actions import ACTION_NAMES, ActionResult, AuditRecord, Processes, create_action_app
from opslab.sandbox.app import TOKEN_HEADER, create_service_app, run_app
from opslab.sandbox.beside import BESIDE, Beside
from opslab.sandbox.chaos import (
    FAULT_NAMES,
    Break,
    Category,
    Expected,
    Scenario,
    create_chaos_app,
    load_scenario,
    load_scenarios,
    run_method,
    scenarios_folder,
)
from opslab.sandbox.dependency import create_dependency_app
from opslab.sandbox.files import Endpoints, SandboxFiles, ensure_token, read_token
from opslab.sandbox.supervisor import PARTS, Part, TargetOptions, World, WorldPorts, parse_parts
from opslab.sandbox.target import Faults, Flags, LatencyModel, OpsOptions, create_target_app

if TYPE_CHECKING:
    from opslab.sandbox.suite import run_suite, suite_scenarios
    from opslab.sandbox.suite_model import ScenarioScore, SuiteResult

# The chaos suite drives the responder (LangGraph and all): loaded on first use, so that starting a
# target or an action server never pays for it.
_SUITE = {
    "run_suite": "opslab.sandbox.suite",
    "suite_scenarios": "opslab.sandbox.suite",
    "ScenarioScore": "opslab.sandbox.suite_model",
    "SuiteResult": "opslab.sandbox.suite_model",
}


def __getattr__(name: str) -> Any:
    module = _SUITE.get(name)
    if module is None:
        raise AttributeError(f"module 'opslab.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ACTION_NAMES",
    "BESIDE",
    "Beside",
    "FAULT_NAMES",
    "PARTS",
    "TOKEN_HEADER",
    "ActionResult",
    "AuditRecord",
    "Break",
    "Category",
    "Endpoints",
    "Expected",
    "Faults",
    "Flags",
    "LatencyModel",
    "OpsOptions",
    "Part",
    "Processes",
    "SandboxFiles",
    "Scenario",
    "TargetOptions",
    "World",
    "WorldPorts",
    "create_action_app",
    "create_chaos_app",
    "create_dependency_app",
    "create_service_app",
    "create_target_app",
    "load_scenario",
    "load_scenarios",
    "parse_parts",
    "ensure_token",
    "read_token",
    "run_app",
    "run_method",
    "run_suite",
    "ScenarioScore",
    "scenarios_folder",
    "suite_scenarios",
    "SuiteResult",
]
