"""The typed HTTP client of the opslab service, for the CLI, the demo, the benchmarks and UI tests.

    client = OpslabClient("http://127.0.0.1:8000", api_token=…, ingest_secret=…)
    client.ingest_run(run)                      -> IngestResult
    rca = client.create_rca("run-001")          -> RcaRunCreated
    for event in client.stream_rca(rca.rca_run_id): …   (JobEvent, from the first, until done/failed)
    client.get_rca(rca.rca_run_id).report       -> RcaReport

Errors come back as the exception the service raised (``errors.from_wire``): a 404 is ``NotFound``, a
422 ``InvalidInput`` naming the field; an unreachable service is ``Unavailable``. Server-sent events
are read with httpx-sse. ``transport`` is the one I/O seam (tests may pass an ASGI or mock transport).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from httpx_sse import SSEError, connect_sse
from pydantic import BaseModel

from opslab import errors
from opslab.telemetry import (
    AgentRunIn,
    BatchResult,
    IngestResult,
    Overview,
    PruneResult,
    RunFilter,
    RunPage,
    RunSummary,
    Timeline,
)
from opslab.wire import JobEvent, RcaRunCreated, RcaRunList, RcaRunView

if TYPE_CHECKING:
    from opslab.autoops import AutoOpsStatus, Choice, FixSuggestion, LoopState
    from opslab.canary import CanaryRunCreated, CanaryRunView
    from opslab.config import Settings
    from opslab.lab import Executor, LabRunCreated, LabRunView
    from opslab.responder import AgentStatus, Incident, IncidentList, TriggerResult

M = TypeVar("M", bound=BaseModel)


def raise_for_error(response: httpx.Response) -> None:
    """Turn the service's ``{"error": …}`` body back into the same exception the service raised."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = response.text
    raise errors.from_wire(response.status_code, body)


def _segment(value: str) -> str:
    return quote(value, safe="")


class OpslabClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_token: str | None = None,
        ingest_secret: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parsed = httpx.URL(base_url) if base_url.strip() else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise errors.InvalidInput.for_field(
                "--url", f"{base_url!r} is not the service's address: expected http(s)://HOST[:PORT]"
            )
        headers = {}
        if api_token:
            headers["Authorization"] = f"Bearer {api_token}"
        if ingest_secret:
            headers["X-Ingest-Secret"] = ingest_secret
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, url: str | None = None, *, timeout: float = 60.0
    ) -> OpslabClient:
        """A client of ``url`` (default ``OPSLAB_URL``) with the configured API token and ingest secret."""
        target = url or settings.url
        if not target:
            raise errors.InvalidInput.for_field("--url", "no service URL: pass --url or set OPSLAB_URL")
        token = settings.api_token.get_secret_value() if settings.api_token else None
        secret = settings.ingest_secret.get_secret_value() if settings.ingest_secret else None
        return cls(target, api_token=token, ingest_secret=secret, timeout=timeout)

    # -- plumbing ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise errors.Unavailable(f"cannot reach the service at {self.base_url}: {exc}") from None
        raise_for_error(response)
        return response

    def _get(self, model: type[M], path: str, **kwargs: Any) -> M:
        return model.model_validate_json(self.request("GET", path, **kwargs).content)

    def _post(self, model: type[M], path: str, **kwargs: Any) -> M:
        return model.model_validate_json(self.request("POST", path, **kwargs).content)

    def stream(self, path: str, *, last_event_id: int | None = None) -> Iterator[JobEvent]:
        """The progress events of a job stream (``…/{id}/stream``), until its done or failed event."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
        try:
            with connect_sse(self.http, "GET", path, headers=headers, timeout=None) as source:
                raise_for_error(_read(source.response))
                for sse in source.iter_sse():
                    if not sse.data:
                        continue
                    event = JobEvent.model_validate({**json.loads(sse.data), "seq": int(sse.id or 0)})
                    yield event
                    if event.terminal:
                        return
        except (httpx.HTTPError, SSEError) as exc:
            raise errors.Unavailable(f"progress stream {path} broke: {exc}") from None

    # -- telemetry --------------------------------------------------------------------------------

    def ingest_run(self, run: AgentRunIn | Mapping[str, Any]) -> IngestResult:
        body = _plain(run)
        return self._post(IngestResult, "/agent-runs", json=body)

    def ingest_batch(self, items: Sequence[AgentRunIn | Mapping[str, Any]]) -> BatchResult:
        """One result per item (a 207 with failed items is an answer, not an error)."""
        body = [
            i.model_dump(mode="json", exclude_none=True) if isinstance(i, AgentRunIn) else i for i in items
        ]
        return self._post(BatchResult, "/agent-runs/batch", json=body)

    def get_run(self, run_id: str) -> RunSummary:
        return self._get(RunSummary, f"/agent-runs/{_segment(run_id)}")

    def timeline(self, run_id: str) -> Timeline:
        return self._get(Timeline, f"/agent-runs/{_segment(run_id)}/timeline")

    def export_run(self, run_id: str, *, format: str = "json") -> dict[str, Any]:  # noqa: A002
        """The whole run (``format=json``) or its spans as an OTLP/HTTP JSON export (``otlp``)."""
        found: dict[str, Any] = self.request(
            "GET", f"/agent-runs/{_segment(run_id)}/export", params={"format": format}
        ).json()
        return found

    def delete_run(self, run_id: str) -> None:
        self.request("DELETE", f"/agent-runs/{_segment(run_id)}")

    def prune_runs(self, older_than: str) -> PruneResult:
        """Delete every run started longer ago than ``older_than`` (``30d``, ``12h``, ``2w``)."""
        return PruneResult.model_validate_json(
            self.request("DELETE", "/agent-runs", params={"older_than": older_than}).content
        )

    def list_runs(
        self, flt: RunFilter | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> RunPage:
        params: dict[str, Any] = {}
        if flt is not None:
            params = {k: v for k, v in flt.model_dump(mode="json").items() if v is not None}
        params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        return self._get(RunPage, "/agent-runs", params=params)

    def overview(self, hours: int = 24) -> Overview:
        return self._get(Overview, "/metrics/overview", params={"hours": hours})

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self.request("GET", "/healthz").json()
        return body

    # -- RCA --------------------------------------------------------------------------------------

    def create_rca(
        self, run_id: str, *, force: bool = False, idempotency_key: str | None = None
    ) -> RcaRunCreated:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._post(
            RcaRunCreated,
            f"/agent-runs/{_segment(run_id)}/rca-runs",
            params={"force": str(force).lower()},
            headers=headers,
        )

    def get_rca(self, rca_run_id: str) -> RcaRunView:
        return self._get(RcaRunView, f"/agent-runs/rca-runs/{_segment(rca_run_id)}")

    def list_rca(self, run_id: str, *, limit: int = 50) -> RcaRunList:
        return self._get(RcaRunList, f"/agent-runs/{_segment(run_id)}/rca-runs", params={"limit": limit})

    def stream_rca(self, rca_run_id: str, *, last_event_id: int | None = None) -> Iterator[JobEvent]:
        return self.stream(f"/rca-runs/{_segment(rca_run_id)}/stream", last_event_id=last_event_id)

    def cancel_rca(self, rca_run_id: str) -> RcaRunView:
        return self._post(RcaRunView, f"/agent-runs/rca-runs/{_segment(rca_run_id)}/cancel")

    # -- canary -----------------------------------------------------------------------------------

    def create_canary(
        self, plan: Mapping[str, Any], *, dry_run: bool = False, idempotency_key: str | None = None
    ) -> CanaryRunCreated:
        from opslab.canary import CanaryRunCreated  # the canary's models load NumPy: only when used

        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"plan": dict(plan), "dry_run": dry_run}
        return self._post(CanaryRunCreated, "/canary/runs", json=body, headers=headers)

    def get_canary(self, canary_run_id: str) -> CanaryRunView:
        from opslab.canary import CanaryRunView

        return self._get(CanaryRunView, f"/canary/runs/{_segment(canary_run_id)}")

    def stream_canary(self, canary_run_id: str, *, last_event_id: int | None = None) -> Iterator[JobEvent]:
        return self.stream(f"/canary/runs/{_segment(canary_run_id)}/stream", last_event_id=last_event_id)

    def cancel_canary(self, canary_run_id: str) -> CanaryRunView:
        from opslab.canary import CanaryRunView

        return self._post(CanaryRunView, f"/canary/runs/{_segment(canary_run_id)}/cancel")

    # -- lab --------------------------------------------------------------------------------------

    def create_lab_run(
        self,
        *,
        experiment_path: str | None = None,
        experiment: Mapping[str, Any] | None = None,
        project_path: str | None = None,
        executor: Executor = "local",
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> LabRunCreated:
        """A lab run as a job of the service: an experiment file on its machine, or an inline experiment
        and its project (paths under the service's ``OPSLAB_LAB_ALLOWED_ROOTS``)."""
        from opslab.lab import LabRunCreated

        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body: dict[str, Any] = {"executor": executor}
        for key, value in (
            ("experiment_path", experiment_path),
            ("experiment", dict(experiment) if experiment is not None else None),
            ("project_path", project_path),
            ("concurrency", concurrency),
        ):
            if value is not None:
                body[key] = value
        return self._post(LabRunCreated, "/lab/runs", json=body, headers=headers)

    def get_lab_run(self, lab_run_id: str) -> LabRunView:
        from opslab.lab import LabRunView

        return self._get(LabRunView, f"/lab/runs/{_segment(lab_run_id)}")

    def stream_lab_run(self, lab_run_id: str, *, last_event_id: int | None = None) -> Iterator[JobEvent]:
        return self.stream(f"/lab/runs/{_segment(lab_run_id)}/stream", last_event_id=last_event_id)

    def cancel_lab_run(self, lab_run_id: str) -> LabRunView:
        from opslab.lab import LabRunView

        return self._post(LabRunView, f"/lab/runs/{_segment(lab_run_id)}/cancel")

    # -- responder --------------------------------------------------------------------------------

    def agent_status(self) -> AgentStatus:
        from opslab.responder import AgentStatus  # the responder's models load LangGraph: only when used

        return self._get(AgentStatus, "/agent/status")

    def agent_trigger(self, *, wait: bool = True) -> TriggerResult:
        from opslab.responder import TriggerResult

        return self._post(TriggerResult, "/agent/trigger", params={"wait": str(wait).lower()}, timeout=None)

    def list_incidents(self, *, status: str | None = None, limit: int = 100) -> IncidentList:
        from opslab.responder import IncidentList

        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        return self._get(IncidentList, "/agent/incidents", params=params)

    def get_incident(self, incident_id: str) -> Incident:
        from opslab.responder import Incident

        return self._get(Incident, f"/agent/incidents/{_segment(incident_id)}")

    def approve_incident(
        self, incident_id: str, *, approver: str, approved: bool = True, wait: bool = False
    ) -> Incident:
        from opslab.responder import Incident

        return self._post(
            Incident,
            f"/agent/incidents/{_segment(incident_id)}/approve",
            json={"approver": approver, "approved": approved},
            params={"wait": str(wait).lower()},
            timeout=None,
        )

    def kill_switch(self, *, engaged: bool, reason: str = "") -> AgentStatus:
        from opslab.responder import AgentStatus

        return self._post(AgentStatus, "/agent/kill-switch", json={"engaged": engaged, "reason": reason})

    # -- autoops ----------------------------------------------------------------------------------

    def start_autoops_loop(self, *, builds: int, interval_s: float = 0.0) -> LoopState:
        from opslab.autoops import LoopState

        return self._post(LoopState, "/autoops/loop", json={"builds": builds, "interval_s": interval_s})

    def autoops_status(self) -> AutoOpsStatus:
        from opslab.autoops import AutoOpsStatus

        return self._get(AutoOpsStatus, "/autoops/status")

    def best_action(self, **context: float | str) -> Choice:
        """The optimizer's configuration for a pipeline (``repo_size_mb``, ``dependency_churn`` …)."""
        from opslab.autoops import Choice

        return self._get(Choice, "/get_best_action", params=context)

    def suggest_fix(self, error: str, *, error_class: str | None = None) -> FixSuggestion:
        from opslab.autoops import FixSuggestion

        body = {"error": error, "status": "failed", **({"error_class": error_class} if error_class else {})}
        return self._post(FixSuggestion, "/suggest_fix", json=body)

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OpslabClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _plain(run: AgentRunIn | Mapping[str, Any]) -> Mapping[str, Any]:
    return run.model_dump(mode="json", exclude_none=True) if isinstance(run, AgentRunIn) else run


def _read(response: httpx.Response) -> httpx.Response:
    """An error answer to a stream request carries a JSON body: read it before it is raised."""
    if response.status_code >= 400:
        response.read()
    return response
