"""RCA as typed work: ``RcaPayload`` (the run and the content it had when asked) -> ``RcaReport``.

The RCA analyses the run as it was asked about: if the run was re-ingested with other content meanwhile,
the job fails with a conflict (a new RCA of the new content has its own dedupe key) instead of filing a
report of other content under this one's key."""

from __future__ import annotations

from pydantic import Field

from opslab.errors import Conflict, NotFound
from opslab.jobs import Payload, Work, WorkContext, WorkDeps, WorkKind
from opslab.rca.llm import LlmEnhancer
from opslab.rca.llm_localize import LlmLocalizer
from opslab.rca.model import RcaReport
from opslab.rca.scoring import load_localizer
from opslab.rca.service import RcaService
from opslab.rca.taxonomy import load_taxonomy
from opslab.telemetry import AgentRunIn

KIND = "rca"
DONE_STEP = "RCA complete"


class RcaPayload(Payload):
    run_id: str = Field(min_length=1)
    content_hash: str = Field(min_length=1, description="The run's content when the RCA was asked.")


RCA: WorkKind[RcaPayload, RcaReport] = WorkKind(
    KIND, RcaPayload, RcaReport, done_step=DONE_STEP, failed_step="RCA failed"
)


def rca_work(deps: WorkDeps) -> Work[RcaPayload, RcaReport]:
    import opslab.judge  # noqa: F401 - loads NumPy/SciPy now, not inside the first RCA

    chat = deps.chat_model()
    enhancer = None
    if chat is not None:
        localizer, explainer = LlmLocalizer(chat, deps.settings.rca_llm_strategy), LlmEnhancer(chat)

        def enhancer(run: AgentRunIn, report: RcaReport) -> RcaReport:
            return explainer(run, localizer(run, report))

    # A localiser fitted to the user's own runs (`opslab rca train`), else the shipped one; a bad file
    # stops the service starting, naming the setting, rather than failing every RCA.
    model = load_localizer(deps.settings.rca_model, "OPSLAB_RCA_MODEL")
    # The categories, with a user's rca-categories.yaml from the knowledge folder: a bad file stops the
    # service starting, naming the file and the field.
    taxonomy = load_taxonomy(deps.settings.resolved_knowledge_dir)
    svc = RcaService(deps.runs, enhancer=enhancer, model=model, taxonomy=taxonomy)

    def analyse(payload: RcaPayload, ctx: WorkContext) -> RcaReport:
        summary = deps.runs.get_summary(payload.run_id)
        if summary is None:
            raise NotFound(f"no agent run {payload.run_id!r}", details={"run_id": payload.run_id})
        if summary.content_hash != payload.content_hash:
            raise Conflict(
                f"run {payload.run_id} was re-ingested with other content after this RCA was asked; "
                "start a new RCA of the run as it is now",
                details={"asked": payload.content_hash, "now": summary.content_hash},
            )
        return svc.analyze(payload.run_id, lambda step, pct: ctx.report(step, pct))

    return RCA.bind(analyse)
