"""RCA as a job kind: payload ``{"run_id", "content_hash"}`` -> the report as JSON."""

from __future__ import annotations

from typing import Any

from opslab.jobs import JobDeps, JobKind, JobProgress
from opslab.rca.llm import LlmEnhancer
from opslab.rca.llm_localize import LlmLocalizer
from opslab.rca.model import RcaReport
from opslab.rca.service import RcaService
from opslab.telemetry import AgentRunIn

KIND = "rca"
DONE_STEP = "RCA complete"


def job_kind(deps: JobDeps) -> JobKind:
    import opslab.judge  # noqa: F401 - loads NumPy/SciPy now, not inside the first RCA

    chat = deps.chat_model()
    enhancer = None
    if chat is not None:
        localizer, explainer = LlmLocalizer(chat, deps.settings.rca_llm_strategy), LlmEnhancer(chat)

        def enhancer(run: AgentRunIn, report: RcaReport) -> RcaReport:
            return explainer(run, localizer(run, report))

    svc = RcaService(deps.runs, enhancer=enhancer)

    def handle(payload: dict[str, Any], progress: JobProgress) -> dict[str, Any]:
        report = svc.analyze(str(payload["run_id"]), lambda step, pct: progress.report(step, pct))
        return report.model_dump(mode="json")

    return JobKind(KIND, handle, done_step=DONE_STEP, failed_step="RCA failed")
