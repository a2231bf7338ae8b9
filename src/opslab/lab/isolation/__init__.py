"""Trial isolation that fails closed: the bubblewrap sandbox, network namespaces, the egress proxy,
least privilege on the host, container backends.

``plan_for`` decides a run's ``IsolationPlan`` from its config, ``preflight`` refuses what this machine
cannot establish (naming the layer), and ``IsolationPlan.launch`` wraps each trial's harness.
``EgressProxy`` runs the allowlist proxy as a child of the runner, in the run's private folder
(``RunScratch``); ``sweep`` and ``sweep_groups`` remove the private folders and the trials' pids groups
of runners that died.
"""

from opslab.lab.isolation.checks import preflight, preflight_started
from opslab.lab.isolation.image import ImageRef, SandboxKind, classify
from opslab.lab.isolation.launch import Launch
from opslab.lab.isolation.pids import sweep as sweep_groups
from opslab.lab.isolation.plan import IsolationPlan, RunServices, plan_for, plan_of
from opslab.lab.isolation.scratch import RunScratch, sweep
from opslab.lab.isolation.services import EgressProxy

__all__ = [
    "EgressProxy",
    "ImageRef",
    "IsolationPlan",
    "Launch",
    "RunScratch",
    "RunServices",
    "SandboxKind",
    "classify",
    "plan_for",
    "plan_of",
    "preflight",
    "preflight_started",
    "sweep",
    "sweep_groups",
]
