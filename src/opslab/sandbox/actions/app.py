"""The action server: the only door through which a responder changes the world. Every route but
``/healthz`` needs ``Authorization: Bearer <action-token>``; params (a JSON object, and/or query
parameters as the seed sends them: ``?escalate_to_db_restart=true``) are checked against the action's JSON
Schema before anything is done; one action runs at a time. Every call to an action is audited, refused
ones too (with the reason), under the caller its token proves (``token:<fingerprint>``), never the one a
header claims (kept beside it as ``claimed_caller``)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import anyio.to_thread
import httpx
from fastapi import Depends, FastAPI, Header, Query, Request
from pydantic import JsonValue

from opslab.errors import NotFound, OpslabError
from opslab.sandbox.actions.catalog import ACTIONS, CATALOG, ActionContext, Processes, run_act
from opslab.sandbox.actions.ledger import ActionResult, AuditLog, AuditRecord, Idempotency
from opslab.sandbox.admin import AdminClient
from opslab.sandbox.app import create_service_app
from opslab.sandbox.guard import bearer_caller, parse_json_object

MAX_HEALTHY_P95_MS = 250.0  # a healthy target answers orders well under this (the slow ranking does not)
TOKEN_FILE = "sandbox/action-token"


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
    memo.load(audit.all())
    one_at_a_time = threading.Lock()

    def refuse(
        request: Request,
        exc: OpslabError,
        caller: str,
        claimed: str | None,
        params: dict[str, JsonValue] | None = None,
        key: str | None = None,
    ) -> None:
        name = request.path_params.get("name") or request.url.path
        audit.append(
            AuditRecord(
                at=datetime.now(UTC),
                id=uuid.uuid4().hex[:12],
                action=str(name),
                params=params if params is not None else dict(query_params(request)),
                status="refused",
                detail=f"HTTP {exc.http_status}: {exc.message}"[:500],
                caller=caller,
                claimed_caller=claimed[:200] if claimed else None,
                idempotency_key=key[:200] if key else None,
            )
        )

    def bearer(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_caller: Annotated[str | None, Header()] = None,
    ) -> str:
        try:
            return bearer_caller(authorization, action_token, server="action server", token_file=TOKEN_FILE)
        except OpslabError as exc:
            refuse(request, exc, "anonymous", x_caller)
            raise

    app.router.dependencies.append(Depends(bearer))

    @app.get("/actions")
    def actions() -> dict[str, JsonValue]:
        return {"actions": [a.describe() for a in CATALOG]}

    @app.get("/action/verify-target-health")
    def verify() -> dict[str, JsonValue]:
        return verify_target_health(target_url)

    @app.get("/action/liveness")
    def liveness() -> dict[str, JsonValue]:
        """Are the target and the dependency processes alive, in what state, and how busy is the host?"""
        if processes is None:
            return {"supervised": False, "processes": {}, "host": None}
        found: dict[str, JsonValue] = {}
        for name in ("target", "dependency"):
            try:
                found[name] = processes.liveness(name).model_dump()
            except NotFound:
                continue
        return {"supervised": True, "processes": found, "host": processes.host_stats().model_dump()}

    @app.post("/action/{name}")
    async def act(
        name: str,
        request: Request,
        caller: str = Depends(bearer),  # noqa: B008 - a closure: an Annotated string would not resolve
        idempotency_key: Annotated[str | None, Header()] = None,
        x_caller: Annotated[str | None, Header()] = None,
    ) -> dict[str, JsonValue]:
        sent: dict[str, JsonValue] = {}
        params: dict[str, JsonValue] = {}
        try:
            spec = ACTIONS.get(name)
            if spec is None:
                raise NotFound(
                    f"name: no action {name!r}",
                    details={
                        "errors": [{"field": "name", "message": "unknown action"}],
                        "known": list(ACTIONS),
                    },
                )
            params = dict(query_params(request))
            body = await request.body()
            sent = _sent(body)  # what was sent, kept in the audit even when it is refused
            params = {**parse_json_object(body), **params}
            spec.validate(params)
        except OpslabError as exc:
            refuse(request, exc, caller, x_caller, {**sent, **params}, idempotency_key)
            raise

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
                audit.append(AuditRecord.of(result, caller, claimed=x_caller, key=idempotency_key))
                if idempotency_key:
                    memo.put(idempotency_key, result)
                return result

        return (await anyio.to_thread.run_sync(run)).model_dump(mode="json")

    @app.get("/audit")
    def read_audit(
        limit: Annotated[int, Query(ge=1, le=10000)] = 100,
        idempotency_key: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, JsonValue]:
        """The last records, oldest first; ``idempotency_key``: the call made with that key, if any (how a
        caller whose call timed out reads what it did)."""
        if idempotency_key is not None:
            found = [r for r in audit.all() if r.idempotency_key == idempotency_key][-limit:]
            return {"records": [r.model_dump(mode="json") for r in found]}
        return {"records": [r.model_dump(mode="json") for r in audit.tail(limit)]}

    return app


def _sent(body: bytes) -> dict[str, JsonValue]:
    """A refused call's body as far as it reads (a JSON object), else its first bytes: for the audit."""
    if not body:
        return {}
    try:
        return parse_json_object(body)
    except OpslabError:
        return {"_body": body[:200].decode("utf-8", errors="replace")}


def query_params(request: Request) -> dict[str, JsonValue]:
    """An action's params given as query parameters (the seed's call shape): ``true``/``false`` are
    booleans, whole numbers are integers, anything else a string."""
    out: dict[str, JsonValue] = {}
    for key, raw in request.query_params.items():
        low = raw.lower()
        out[key] = True if low == "true" else False if low == "false" else int(raw) if raw.isdigit() else raw
    return out


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
