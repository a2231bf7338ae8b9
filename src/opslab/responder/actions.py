"""``HttpActionExecutor``: the action server's catalog, its actions and its verdict on the target.

Every failure is a value: an unknown action (404), a body the action refuses (422), a wrong token
(401), a server that is down - each comes back as ``ActionResult(status="error", detail=...)``,
because the workflow reasons about a failed action (it plans another) rather than crashing on it.

An action is an idempotent operation whose outcome is read back, never guessed: a call that times out
may have run, so its ``Idempotency-Key`` is looked up in the action server's audit (and while it is not
there, the call is made again with the same key, which acts at most once). Every call says who makes it
(``X-Caller``), so the audit tells the responder's calls from a human's.
"""

from __future__ import annotations

import time
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
        caller: str = "opslab-responder",
        read_back_s: float = 60.0,
    ) -> None:
        self.timeout_s, self.read_back_s = timeout_s, read_back_s
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "X-Caller": caller},
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
        except httpx.TimeoutException as exc:
            if key is None:
                return _error(name, params, f"timed out, outcome unknown: {exc}", started)
            return self._read_back(name, params, key, started)
        except httpx.HTTPError as exc:
            return _error(name, params, f"action server unreachable: {type(exc).__name__}: {exc}", started)
        return _answer(name, params, r, started)

    def recorded(self, key: str) -> ActionResult | None:
        """What the action server did under ``key``, from its audit; None when it has no such call or
        cannot say."""
        try:
            r = self.http.get("/audit", params={"idempotency_key": key}, timeout=max(self.timeout_s, 5.0))
            r.raise_for_status()
            records = r.json().get("records") or []
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        done = [x for x in records if isinstance(x, dict) and x.get("status") in ("success", "error")]
        if not done:
            return None
        rec = done[0]
        try:
            return ActionResult(
                action=str(rec.get("action")),
                params=rec.get("params") or {},
                status=rec["status"],
                detail=str(rec.get("detail", "")),
                id=str(rec["id"]) if rec.get("id") is not None else None,
                started_at=_time(rec.get("started_at")) or _time(rec.get("at")) or datetime.now(UTC),
                ended_at=_time(rec.get("at")) or datetime.now(UTC),
            )
        except (KeyError, ValidationError):
            return None

    def _read_back(
        self, name: str, params: dict[str, JsonValue], key: str, started: datetime
    ) -> ActionResult:
        """The call timed out: what happened, from the audit; while it is not there, the same call again
        (the same key: the server answers the first call's result, or runs it once if it never did)."""
        deadline = time.monotonic() + self.read_back_s
        while True:
            found = self.recorded(key)
            if found is not None:
                note = f"{found.detail} (read back from the action server's audit: the call timed out)"
                return found.model_copy(update={"detail": note.strip()})
            left = deadline - time.monotonic()
            if left <= 0:
                return _error(name, params, "timed out; the action server has no record of it", started)
            try:
                r = self.http.post(
                    f"/action/{name}",
                    json=params,
                    headers={"Idempotency-Key": key},
                    timeout=max(self.timeout_s, left),
                )
            except httpx.HTTPError:
                continue  # still running, or the server is away: read the audit again
            return _answer(name, params, r, started)

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


def _answer(name: str, params: dict[str, JsonValue], r: httpx.Response, started: datetime) -> ActionResult:
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
