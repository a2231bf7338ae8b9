"""``opslab responder run|status|incidents|show|approve|halt``: the incident responder from the terminal.

``run`` watches the target in the foreground (the same responder ``opslab serve`` runs with
``OPSLAB_RESPONDER_ENABLED=true``), on the local database. The other commands read and act on that
database, or on a service with ``--url``/``OPSLAB_URL``.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from opslab.cli.context import (
    JsonOption,
    ServiceUrlOption,
    UrlOption,
    console,
    err_console,
    local_runtime,
    print_json,
    settings,
)
from opslab.cli.tables import Column, WideOption, print_table

if TYPE_CHECKING:
    from opslab.config import Settings
    from opslab.responder import Assessment, Incident, Observation, ProgressEvent
    from opslab.runtime import Runtime

responder_app = typer.Typer(
    help="The autonomous incident responder: watch, detect, diagnose, act, verify, learn.",
    no_args_is_help=True,
)
STATUS_STYLE = {"resolved": "green", "escalated": "red", "awaiting_approval": "yellow", "open": "cyan"}


def _settings(**overrides: Any) -> Settings:
    chosen = {k: v for k, v in overrides.items() if v is not None}
    return settings().model_copy(update=chosen) if chosen else settings()


def _runtime(s: Settings) -> Runtime:
    return local_runtime(s)


def _remote(url: str | None) -> bool:
    return bool(url or settings().url)


def poll_line(obs: Observation, assessment: Assessment) -> str:
    """One poll as a line: what was seen, and the verdict (quiet, anomalous, explained by …, incident)."""
    seen = [f"health {obs.health_status}"]
    if obs.latency_p95_ms is not None:
        seen.append(f"p95 {obs.latency_p95_ms:.0f} ms")
    if obs.error_rate is not None:
        seen.append(f"errors {obs.error_rate:.1f}%")
    if obs.memory_rss_mb is not None:
        seen.append(f"rss {obs.memory_rss_mb:.0f} MB")
    if obs.pool is not None:
        seen.append(f"pool {obs.pool.pool_health}")
    if obs.experiments:
        seen.append(f"experiment: {'; '.join(obs.experiments)}")
    if assessment.is_incident:
        verdict = f"incident: {'; '.join(assessment.reasons)}"
    elif assessment.signals:
        verdict = f"anomalous ({assessment.consecutive} in a row): {'; '.join(assessment.reasons)}"
    elif assessment.explained:
        verdict = f"explained: {'; '.join(assessment.explained)}"
    else:
        verdict = "quiet"
    return f"{obs.timestamp:%H:%M:%S} poll        {' · '.join(seen)} → {verdict}"


def _print_poll(obs: Observation, assessment: Assessment) -> None:
    console.print(escape(poll_line(obs, assessment)), highlight=False)


def poll_json(obs: Observation, assessment: Assessment) -> dict[str, Any]:
    """One poll as JSON: the seed's symptoms, the experiments seen, and the verdict."""
    from opslab.responder import symptoms_of

    verdict = (
        "incident"
        if assessment.is_incident
        else "anomalous"
        if assessment.signals
        else "explained"
        if assessment.explained
        else "quiet"
    )
    return symptoms_of(obs, assessment) | {"experiments": obs.experiments, "verdict": verdict}


def _print_poll_json(obs: Observation, assessment: Assessment) -> None:
    typer.echo(json.dumps({"poll": poll_json(obs, assessment)}, default=str))  # a line as it happens


def _print_event_json(event: ProgressEvent) -> None:
    typer.echo(json.dumps({"event": event.model_dump(mode="json")}))


def _print_event(event: ProgressEvent) -> None:
    status = f" [{STATUS_STYLE.get(event.status or '', 'white')}]{event.status}[/]" if event.status else ""
    console.print(
        f"{event.at:%H:%M:%S} [bold]{event.node:<11}[/]{status} {escape(event.message)}", highlight=False
    )


@responder_app.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="Poll (and respond) once, then exit.")] = False,
    trigger: Annotated[
        bool, typer.Option("--trigger", help="With --once: respond to any anomaly, confirmed or not.")
    ] = False,
    target_url: Annotated[
        str | None, typer.Option(help="The service to watch (TARGET_API_BASE_URL).")
    ] = None,
    action_url: Annotated[str | None, typer.Option(help="The action server (ACTION_SERVER_URL).")] = None,
    poll_interval: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds between polls (POLL_INTERVAL_SECONDS).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan actions, never execute them.")] = False,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Lift --approval-risk: no action waits for approval.")
    ] = False,
    approval_risk: Annotated[
        str | None,
        typer.Option(
            help="Actions this risky or more wait for a human: none (default), low, medium or high "
            "(OPSLAB_RESPONDER_APPROVAL_RISK)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Watch the target and respond to incidents until Ctrl-C (or once, with --once)."""
    s = _settings(
        responder_target_url=target_url,
        responder_action_url=action_url,
        responder_poll_interval_s=poll_interval,
        responder_dry_run=dry_run or None,
        responder_auto_approve=auto_approve or None,
        responder_approval_risk=_approval_risk(approval_risk),
    )
    rt = _runtime(s)
    try:
        responder = rt.responder()
        if not as_json:
            responder.add_poll_listener(_print_poll)
            responder.add_progress_listener(_print_event)
        for resumed in responder.resume_unfinished():
            _report(resumed, as_json)
        if once:
            polls: list[dict[str, Any]] = []
            responder.add_poll_listener(lambda o, a: polls.append(poll_json(o, a)))
            found = responder.trigger() if trigger else responder.poll_once()
            if as_json:
                incident = found.model_dump(mode="json") if found is not None else None
                print_json({"incident": incident, "poll": polls[-1] if polls else None})
            elif found is not None:
                _report(found, as_json)
            else:
                console.print("no incident")
            return
        if as_json:  # JSON lines: each poll and each step of an incident as it happens
            responder.add_poll_listener(_print_poll_json)
            responder.add_progress_listener(_print_event_json)
        mode = " (dry run)" if s.responder_dry_run else ""
        err_console.print(f"responder watching every {s.responder_poll_interval_s:g} s{mode}; Ctrl-C to stop")
        stop = threading.Event()
        try:
            responder.watch(stop)
        except KeyboardInterrupt:
            stop.set()
    finally:
        rt.close()


def _report(incident: Incident, as_json: bool) -> None:
    if as_json:
        print_json(incident.model_dump(mode="json"))
        return
    style = STATUS_STYLE.get(incident.status, "white")
    diagnosis = incident.diagnosis.summary if incident.diagnosis else "no diagnosis"
    console.print(
        f"incident {incident.id}: [{style}]{incident.status}[/] — {escape(diagnosis)} "
        f"(confidence {incident.confidence:.2f}); actions: "
        + (", ".join(a.action for a in incident.actions) or "none"),
        highlight=False,
    )


@responder_app.command("status")
def status(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """What the responder is doing, what it last saw, and what waits for a human."""
    if _remote(url):
        from opslab.client import OpslabClient

        with OpslabClient.from_settings(settings(), url) as client:
            data = client.agent_status().model_dump(mode="json")
    else:
        rt = _runtime(settings())
        try:
            incidents = rt.incidents.list(limit=1000)
            data = {
                "state": "not running here (see `opslab responder run` or OPSLAB_RESPONDER_ENABLED)",
                "open_incidents": [i.id for i in incidents if i.status == "open"],
                "awaiting_approval": [i.id for i in incidents if i.status == "awaiting_approval"],
                "incidents": len(incidents),
            }
        finally:
            rt.close()
    if as_json:
        print_json(data)
        return
    for key in ("state", "halted", "dry_run", "open_incidents", "awaiting_approval", "incidents"):
        if key in data:
            console.print(f"{key:<18} {escape(str(data[key]))}", highlight=False)


@responder_app.command("incidents")
def incidents(
    url: UrlOption = None,
    status_filter: Annotated[
        str | None, typer.Option("--status", help="open | resolved | escalated | awaiting_approval")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Incidents, newest first."""
    from opslab.errors import InvalidInput
    from opslab.responder import IncidentSummary

    if status_filter not in (None, "open", "resolved", "escalated", "awaiting_approval"):
        raise InvalidInput.for_field("--status", "expected open, resolved, escalated or awaiting_approval")
    if _remote(url):
        from opslab.client import OpslabClient

        with OpslabClient.from_settings(settings(), url) as client:
            rows = client.list_incidents(status=status_filter, limit=limit).incidents
    else:
        rt = _runtime(settings())
        try:
            rows = [IncidentSummary.of(i) for i in rt.incidents.list(limit=limit, status=status_filter)]
        finally:
            rt.close()
    if as_json:
        print_json({"incidents": [r.model_dump(mode="json") for r in rows]})
        return
    print_table(
        [
            Column("id", key=True),
            Column("status", whole=True),
            Column("diagnosis"),
            Column("confidence", drop=3, justify="right"),
            Column("actions", drop=2),
            Column("opened", whole=True, drop=1),
            Column("resolved", whole=True, drop=4),
        ],
        [
            [
                r.id,
                f"[{STATUS_STYLE.get(r.status, 'white')}]{r.status}[/]",
                escape(r.category or "-"),
                f"{r.confidence:.2f}",
                escape(", ".join(r.actions) or "-"),
                r.opened_at[:19],
                (r.resolved_at or "-")[:19],
            ]
            for r in rows
        ],
        wide=wide,
    )


@responder_app.command("show")
def show(incident_id: str, url: UrlOption = None) -> None:
    """One incident with its whole state history, as JSON."""
    if _remote(url):
        from opslab.client import OpslabClient

        with OpslabClient.from_settings(settings(), url) as client:
            print_json(client.get_incident(incident_id).model_dump(mode="json"))
        return
    rt = _runtime(settings())
    try:
        print_json(rt.incidents.get(incident_id).model_dump(mode="json"))
    finally:
        rt.close()


@responder_app.command("approve")
def approve(
    incident_id: str,
    url: UrlOption = None,
    reject: Annotated[bool, typer.Option("--reject", help="Refuse the action instead.")] = False,
    approver: Annotated[str, typer.Option(help="Who decides (kept in the audit trail).")] = "cli",
    as_json: JsonOption = False,
) -> None:
    """Approve (or --reject) the high-risk action an incident waits for; it then runs and is verified."""
    if _remote(url):
        from opslab.client import OpslabClient

        with OpslabClient.from_settings(settings(), url) as client:
            incident = client.approve_incident(incident_id, approver=approver, approved=not reject, wait=True)
    else:
        rt = _runtime(settings())
        try:
            responder = rt.responder()
            if not as_json:
                responder.add_progress_listener(_print_event)
            decide = responder.reject if reject else responder.approve
            incident = decide(incident_id, approver=approver)
        finally:
            rt.close()
    _report(incident, as_json)


@responder_app.command("halt")
def halt(
    url: ServiceUrlOption = None,
    release: Annotated[bool, typer.Option("--release", help="Release the kill switch.")] = False,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")] = "",
) -> None:
    """The kill switch of a running service's responder: no action is executed until --release."""
    from opslab.client import OpslabClient
    from opslab.errors import InvalidInput

    if not _remote(url):
        raise InvalidInput.for_field("--url", "the kill switch acts on a running service: pass --url")
    with OpslabClient.from_settings(settings(), url) as client:
        state = client.kill_switch(engaged=not release, reason=reason or "kill switch via CLI")
    console.print(f"responder {'halted' if state.halted else 'running'}")


def _approval_risk(value: str | None) -> str | None:
    from opslab.errors import InvalidInput

    if value is not None and value not in ("none", "low", "medium", "high"):
        raise InvalidInput.for_field("--approval-risk", "expected none, low, medium or high")
    return value
