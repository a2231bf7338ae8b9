"""The target's own experiment, for the seed's original integration: ``POST /api/lab/run`` starts an ABAB
experiment the target runs on itself (the canary's own Execute and Judge: real open-loop load on its own
search endpoint, its flags switched each window, the baseline restored at the end), and
``GET /api/lab/report?mini=1`` serves the mini report the canary's ``mode: report`` reads."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from opslab.canary import CanaryResult, Flags, LoadSpec, RunRecord, parse_plan, render_mini, run_experiment
from opslab.errors import Conflict, NotFound, OperationFailed
from opslab.sandbox.target.model import Flags as TargetFlags
from opslab.sandbox.target.model import TargetState

SEARCH_PATH = "/api/search?q=lab"


class LabRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidate_flags: dict[str, JsonValue]
    qps: float = Field(gt=0, le=2000)
    window_sec: float = Field(gt=0, le=600)
    rounds: int = Field(ge=1, le=20)
    seed: int = 42


@dataclass
class Lab:
    """The one experiment a target runs at a time, and the last one's result or failure."""

    status: Literal["idle", "running", "done"] = "idle"
    result: CanaryResult | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class SelfTarget:
    """The target as the canary's ``TargetClient``: flags and health in-process, load over HTTP (so the
    latency measured is the latency served)."""

    def __init__(self, base_url: str, state: TargetState) -> None:
        self.base_url, self.state = base_url, state

    def health(self) -> dict[str, JsonValue]:
        return {"ok": self.state.healthy()}

    def get_flags(self) -> Flags:
        return dict(self.state.flags.model_dump())

    def set_flags(self, flags: Flags) -> Flags:
        self.state.flags = TargetFlags.model_validate(flags)
        return flags

    def load(self) -> LoadSpec:
        return LoadSpec.get(self.base_url + SEARCH_PATH)

    def start_experiment(self, body: dict[str, JsonValue]) -> dict[str, JsonValue]:
        raise NotImplementedError("the target's own experiment runs on its own load")

    def fetch_report(self) -> str | None:
        raise NotImplementedError("the target's own experiment runs on its own load")


def add_experiment_routes(app: FastAPI, state: TargetState) -> None:
    lab = Lab()

    @app.post("/api/lab/run", status_code=202)
    def start(run: LabRun, request: Request) -> dict[str, JsonValue]:
        """Start an ABAB experiment of ``candidate_flags`` against the current flags (409 while one runs)."""
        candidate = state.flags.merged(run.candidate_flags, under="candidate_flags")
        with lab.lock:
            if lab.status == "running":
                raise Conflict("an experiment is already running")
            lab.status, lab.result, lab.error = "running", None, None
        base = str(request.base_url).rstrip("/")
        threading.Thread(
            target=_experiment, args=(base, run, candidate, state, lab), name="sandbox-lab", daemon=True
        ).start()
        return {"status": "running"}

    @app.get("/api/lab/report")
    def report(mini: int = 0) -> Response:
        """The last experiment's result (202 while it runs); ``mini=1``: the seed's mini report."""
        if lab.status == "running":
            return JSONResponse(status_code=202, content={"status": "running"})
        if lab.error:
            raise OperationFailed(f"the experiment failed: {lab.error}")
        if lab.result is None:
            raise NotFound("no experiment has run yet: POST /api/lab/run")
        if mini:
            return PlainTextResponse(render_mini(lab.result))
        return JSONResponse(RunRecord.of(lab.result).model_dump(mode="json"))


def _experiment(base: str, run: LabRun, candidate: TargetFlags, state: TargetState, lab: Lab) -> None:
    target = SelfTarget(base, state)
    previous = state.flags
    state.experiment = {
        "kind": "ab",
        "name": "the target's own A/B experiment (POST /api/lab/run)",
        "started_at": datetime.now(UTC).isoformat(),
        "rounds": run.rounds,
        "window_sec": run.window_sec,
        "qps": run.qps,
    }
    try:
        plan = parse_plan(
            {
                "experiment": {
                    "qps": run.qps,
                    "window_sec": run.window_sec,
                    "rounds": run.rounds,
                    "flow_policy": candidate.control.flow_policy,
                    "target_p95": candidate.control.target_p95,
                    "routing_mode": candidate.routing.mode,
                    "topk_threshold": candidate.routing.topk_threshold,
                },
                "target": {"base_url": base},
                "seed": run.seed,
                "time_budget": 2 * run.rounds * run.window_sec + 60,
            }
        )
        lab.result = run_experiment(plan, target)
    except Exception as exc:  # reported on the report endpoint, never lost in a thread
        lab.error = f"{type(exc).__name__}: {exc}"
    finally:
        state.flags = previous
        state.experiment = None
        lab.status = "done"
