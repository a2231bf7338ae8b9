"""The sandbox's own lab, for the seed's original integration: `POST /api/lab/run` starts an ABAB experiment
that the sandbox runs on itself (real open-loop load on its own search endpoint, its flags switched each
window, the baseline restored at the end), and `GET /api/lab/report?mini=1` serves the mini report that
the canary's `mode: report` reads."""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opslab.errors import invalid_from_pydantic


class LabRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidate_flags: dict[str, Any]
    qps: float = Field(gt=0, le=2000)
    window_sec: float = Field(gt=0, le=600)
    rounds: int = Field(ge=1, le=20)
    seed: int = 42


def add_lab_routes(app: FastAPI, state: dict[str, Any]) -> None:
    from opslab.sandbox.target import Flags

    lab: dict[str, Any] = {"status": "idle", "result": None, "error": None}
    lock = threading.Lock()

    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})

    @app.post("/api/lab/run", status_code=202)
    async def start(request: Request) -> Any:
        try:
            run = LabRun.model_validate(await request.json())
            merged = state["flags"].model_dump()
            for section, values in run.candidate_flags.items():
                merged.setdefault(section, {}).update(values if isinstance(values, dict) else {})
            candidate = Flags.model_validate(merged)
        except ValidationError as exc:
            err = invalid_from_pydantic(list(exc.errors(include_url=False)))
            return JSONResponse(status_code=422, content={"error": err.to_dict()})
        except ValueError:
            return error(400, "invalid_input", "body: expected a JSON object")
        with lock:
            if lab["status"] == "running":
                return error(409, "conflict", "an experiment is already running")
            lab.update(status="running", result=None, error=None)
        base = str(request.base_url).rstrip("/")
        threading.Thread(
            target=_experiment, args=(base, run, candidate, state, lab), name="sandbox-lab", daemon=True
        ).start()
        return {"status": "running"}

    @app.get("/api/lab/report")
    def report(mini: int = 0) -> Response:
        if lab["status"] == "running":
            return JSONResponse(status_code=202, content={"status": "running"})
        if lab["error"]:
            return error(500, "experiment_failed", lab["error"])
        if lab["result"] is None:
            return error(404, "not_found", "no experiment has run yet: POST /api/lab/run")
        if mini:
            from opslab.canary.summary import render_mini

            return PlainTextResponse(render_mini(lab["result"]))
        return JSONResponse(lab["result"])


class _Self:
    """The sandbox as the canary's target, reached in-process for flags and over HTTP for load."""

    def __init__(self, base: str, state: dict[str, Any]) -> None:
        self.base, self.state = base, state

    def health(self) -> dict[str, Any]:
        return {"ok": all(self.state["health"].values())}

    def get_flags(self) -> dict[str, Any]:
        flags: dict[str, Any] = self.state["flags"].model_dump()
        return flags

    def set_flags(self, flags: dict[str, Any]) -> dict[str, Any]:
        from opslab.sandbox.target import Flags

        self.state["flags"] = Flags.model_validate(flags)
        return flags

    def request_url(self) -> str:
        return f"{self.base}/api/search?q=lab"

    def start_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError("the sandbox's own experiment runs on its own load")

    def fetch_report(self) -> str | None:
        raise NotImplementedError("the sandbox's own experiment runs on its own load")


def _experiment(base: str, run: LabRun, candidate: Any, state: dict[str, Any], lab: dict[str, Any]) -> None:
    """The canary's own Execute and Judge (ABAB windows of open-loop load), run against this sandbox."""
    from opslab.canary import parse_plan, run_window
    from opslab.canary.execute import execute_load

    target = _Self(base, state)
    previous = target.get_flags()
    try:
        flags = candidate.model_dump()
        plan = parse_plan(
            {
                "experiment": {
                    "qps": run.qps,
                    "window_sec": run.window_sec,
                    "rounds": run.rounds,
                    "flow_policy": flags["control"]["flow_policy"],
                    "target_p95": flags["control"]["target_p95"],
                    "routing_mode": flags["routing"]["mode"],
                    "topk_threshold": flags["routing"]["topk_threshold"],
                },
                "target": {"base_url": base},
                "seed": run.seed,
                "time_budget": 2 * run.rounds * run.window_sec + 60,
            }
        )
        result: dict[str, Any] = {}
        execute_load(
            plan,
            target,
            flags,
            previous,
            result,
            time.monotonic(),
            threading.Event(),
            lambda *_: None,
            run_window,
        )
        lab.update(result=result)
    except Exception as exc:  # reported on the report endpoint, never lost in a thread
        lab.update(error=f"{type(exc).__name__}: {exc}")
    finally:
        target.set_flags(previous)
        lab["status"] = "done"
