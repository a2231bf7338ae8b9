"""``HttpActionExecutor``: the action server's catalog, its actions and its verdict on the target.

Every failure is a value: an unknown action (404), a body the action refuses (422), a wrong token
(401), a server that is down - each comes back as ``ActionResult(status="error", detail=...)``,
because the workflow reasons about a failed action (it plans another) rather than crashing on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import JsonValue, ValidationError

from opslab.responder.model import ActionResult, ActionSpec
from opslab.responder.observation import Liveness


class HttpActionExecutor:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            transport=transport,
        )

    def catalog(self) -> list[ActionSpec]:
        """The actions on offer; an unreachable server offers none (the planner then escalates)."""
        try:
            r = self.http.get("/actions")
            r.raise_for_status()
            return [ActionSpec.model_validate(a) for a in r.json().get("actions", [])]
        except (httpx.HTTPError, ValueError, ValidationError, AttributeError):
            return []

    def execute(self, name: str, params: dict[str, JsonValue], *, key: str | None = None) -> ActionResult:
        started = datetime.now(UTC)
        headers = {"Idempotency-Key": key} if key else {}
        try:
            r = self.http.post(f"/action/{name}", json=params, headers=headers)
        except httpx.HTTPError as exc:
            return _error(name, params, f"action server unreachable: {type(exc).__name__}: {exc}", started)
        body = _json(r)
        if r.status_code >= 400:
            return _error(name, params, f"refused (HTTP {r.status_code}): {_message(body)}", started)
        if not isinstance(body, dict):
            return _error(name, params, f"unexpected answer (HTTP {r.status_code})", started)
        status = "success" if body.get("status") == "success" else "error"
        return ActionResult(
            action=str(body.get("action") or name),
            params=params,
            status=status,
            detail=str(body.get("detail", "")),
            id=str(body["id"]) if body.get("id") is not None else None,
            started_at=_time(body.get("started_at")) or started,
            ended_at=_time(body.get("ended_at")) or datetime.now(UTC),
        )

    def verify(self) -> dict[str, JsonValue]:
        try:
            r = self.http.get("/action/verify-target-health")
            r.raise_for_status()
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            return {"is_healthy": False, "error": f"{type(exc).__name__}: {exc}"}
        if not isinstance(body, dict):
            return {"is_healthy": False, "error": "not a JSON object"}
        return body

    def liveness(self) -> Liveness | None:
        try:
            r = self.http.get("/action/liveness")
            r.raise_for_status()
            body = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(body, dict) or not body.get("supervised"):
            return None
        target = (body.get("processes") or {}).get("target") or {}
        host = body.get("host") or {}
        try:
            return Liveness(
                supervised=True,
                alive=target.get("alive"),
                state=target.get("state"),
                pid=target.get("pid"),
                cpu_pct=target.get("cpu_pct"),
                host_cpus=host.get("cpus"),
                host_load1=host.get("load1"),
                host_cpu_busy_pct=host.get("cpu_busy_pct"),
                host_mem_available_mb=host.get("mem_available_mb"),
            )
        except ValidationError:
            return None

    def close(self) -> None:
        self.http.close()


def _error(name: str, params: dict[str, JsonValue], detail: str, started: datetime) -> ActionResult:
    return ActionResult(
        action=name,
        params=params,
        status="error",
        detail=detail,
        started_at=started,
        ended_at=datetime.now(UTC),
    )


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def _message(body: Any) -> str:
    """The error text of the service's error shape (``{"error": {"message"}}``) or FastAPI's ``detail``."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("detail"):
            return str(body["detail"])
    return str(body)[:300] if body is not None else "no body"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
