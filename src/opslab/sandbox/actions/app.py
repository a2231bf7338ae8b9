"""The action server: the only door through which a responder changes the world. Every route but
``/healthz`` needs ``Authorization: Bearer <action-token>``; params are checked against the action's JSON
Schema before anything is done; one action runs at a time; every action done is audited."""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import httpx
from fastapi import Depends, FastAPI, Header, Query, Request
from pydantic import JsonValue

from opslab.errors import InvalidInput, NotFound, Unauthorized
from opslab.sandbox.actions.catalog import ACTIONS, CATALOG, ActionContext, Processes, run_act
from opslab.sandbox.actions.ledger import ActionResult, AuditLog, AuditRecord, Idempotency
from opslab.sandbox.admin import AdminClient
from opslab.sandbox.app import create_service_app

MAX_HEALTHY_P95_MS = 250.0  # a healthy target answers orders well under this (the slow ranking does not)


def create_action_app(
    *,
    target_url: str,
    sandbox_token: str,
    action_token: str,
    audit_path: Path,
    processes: Processes | None = None,
) -> FastAPI:
    app = create_service_app("actions")
    ctx = ActionContext(target=AdminClient(target_url, sandbox_token, part="target"), processes=processes)
    audit, memo = AuditLog(audit_path), Idempotency()
    one_at_a_time = threading.Lock()

    def bearer(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), action_token.encode()):
            raise Unauthorized("the action server needs Authorization: Bearer <action-token>")

    app.router.dependencies.append(Depends(bearer))

    @app.get("/actions")
    def actions() -> dict[str, JsonValue]:
        return {"actions": [a.describe() for a in CATALOG]}

    @app.get("/action/verify-target-health")
    def verify() -> dict[str, JsonValue]:
        return verify_target_health(target_url)

    @app.post("/action/{name}")
    async def act(
        name: str,
        request: Request,
        idempotency_key: Annotated[str | None, Header()] = None,
        x_caller: Annotated[str | None, Header()] = None,
    ) -> dict[str, JsonValue]:
        spec = ACTIONS.get(name)
        if spec is None:
            raise NotFound(
                f"name: no action {name!r}",
                details={"errors": [{"field": "name", "message": "unknown action"}], "known": list(ACTIONS)},
            )
        params = _params(await request.body())
        spec.validate(params)
        caller = x_caller or request.headers.get("user-agent", "unknown")

        def run() -> ActionResult:
            with one_at_a_time:  # a repeat waits for the first, then gets its result
                if idempotency_key and (first := memo.get(idempotency_key, name, params)) is not None:
                    return first
                started = datetime.now(UTC)
                status, detail = run_act(spec, ctx, params)
                result = ActionResult(
                    id=uuid.uuid4().hex[:12],
                    action=name,
                    params=params,
                    status=status,
                    detail=detail,
                    started_at=started,
                    ended_at=datetime.now(UTC),
                )
                audit.append(AuditRecord.of(result, caller))
                if idempotency_key:
                    memo.put(idempotency_key, result)
                return result

        return (await anyio.to_thread.run_sync(run)).model_dump(mode="json")

    @app.get("/audit")
    def read_audit(limit: Annotated[int, Query(ge=1, le=10000)] = 100) -> dict[str, JsonValue]:
        return {"records": [r.model_dump(mode="json") for r in audit.tail(limit)]}

    return app


def _params(body: bytes) -> dict[str, JsonValue]:
    if not body.strip():
        return {}
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise InvalidInput.for_field("body", "malformed JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput.for_field("body", "must be a JSON object of the action's params")
    return data


def verify_target_health(target_url: str) -> dict[str, JsonValue]:
    """Is the target healthy now? Its own health status, its window's error rate and p95."""
    try:
        with httpx.Client(base_url=target_url, timeout=5.0) as client:
            health = client.get("/api/v1/health").json()
            metrics = client.get("/api/v1/metrics").json()
    except (httpx.HTTPError, ValueError) as exc:
        return {
            "is_healthy": False,
            "status": "unreachable",
            "error_rate": None,
            "latency_p95_ms": None,
            "checks": {"target": {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}},
        }
    error_rate, p95 = float(metrics["error_rate"]), float(metrics["latency_p95_ms"])
    return {
        "is_healthy": health["status"] == "healthy" and error_rate <= 5.0 and p95 <= MAX_HEALTHY_P95_MS,
        "status": health["status"],
        "error_rate": error_rate,
        "latency_p95_ms": p95,
        "checks": health["checks"],
    }
