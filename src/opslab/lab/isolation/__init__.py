"""Trial isolation that fails closed: network namespaces, the egress proxy, container backends.

``plan_for`` decides a run's ``IsolationPlan`` from its config, ``preflight`` refuses what this machine
cannot establish, and ``IsolationPlan.launch`` wraps each trial's harness. ``EgressProxy`` runs the
allowlist proxy as a child of the runner.
"""

from opslab.lab.isolation.image import ImageRef, SandboxKind, classify
from opslab.lab.isolation.plan import IsolationPlan, Launch, RunServices, plan_for, plan_of, preflight
from opslab.lab.isolation.services import EgressProxy

__all__ = [
    "EgressProxy",
    "ImageRef",
    "IsolationPlan",
    "Launch",
    "RunServices",
    "SandboxKind",
    "classify",
    "plan_for",
    "plan_of",
    "preflight",
]
