"""The wire: what the service answers and its clients read, apart from any engine.

``opslab.client`` (the typed HTTP client), the CLI's remote commands and the dashboard's tests import the
shapes they exchange from here, so a client loads pydantic models, not the RCA's scorer or NumPy: an
import-linter contract forbids this package any engine, and a test imports the client alone and looks.

    jobs   JobView, JobEvent, ErrorBody, WireStatus  (every job resource: RCA, canary, lab)
    rca    RcaReport and its parts, RcaRunView, RcaRunCreated, RcaRunList
    http   header names a server and its load generator share
"""

from opslab.wire.http import SERVER_TIME_HEADER
from opslab.wire.jobs import WIRE_TERMINAL, ErrorBody, JobEvent, JobView, WireStatus
from opslab.wire.rca import (
    REPORT_SCHEMA_VERSION,
    ActionItem,
    Alternative,
    Category,
    Confidence,
    Evidence,
    Hypothesis,
    RcaReport,
    RcaRunCreated,
    RcaRunList,
    RcaRunView,
    RootCause,
    RunbookRef,
)

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "SERVER_TIME_HEADER",
    "WIRE_TERMINAL",
    "ActionItem",
    "Alternative",
    "Category",
    "Confidence",
    "ErrorBody",
    "Evidence",
    "Hypothesis",
    "JobEvent",
    "JobView",
    "RcaReport",
    "RcaRunCreated",
    "RcaRunList",
    "RcaRunView",
    "RootCause",
    "RunbookRef",
    "WireStatus",
]
