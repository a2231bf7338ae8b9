"""The product's capabilities, each declared once: what it brings to the settings, the work core, the
service's long-lived loops, the API, the dashboard, the command line and the database.

The entry points iterate ``CAPABILITIES`` rather than naming every capability by hand::

    config.py     groups its settings (``Settings.section_of``; docs/configuration.md, one table each)
    runtime.py    registers its work kinds (``work``)
    api/app.py    mounts its API routers and dashboard pages, starts its services (``services``)
    cli/app.py    adds its commands (``cli``)
    store         owns its tables (a test holds every table to exactly one owner)

A part lives in the layer it belongs to — a router in ``opslab.api``, a command in ``opslab.cli``, a work
factory in the capability — and this module sits below all of them, so it names each part by its import
path (``"module:attribute"``, as a package's entry points do) and ``load`` imports it when the entry point
that needs it starts: ``opslab lab run`` never imports the RCA's scorer, a worker never imports the
dashboard. An import-linter contract keeps this module free of every other opslab module; a test resolves
every reference and checks that each one lives in the layer its use says.

Adding a capability is one declaration here and its own modules; nothing else lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class Capability:
    name: str
    summary: str
    # Settings fields it owns: a name, or a prefix ending in "_" for every field that starts with it.
    settings: tuple[str, ...] = ()
    # Work factories (``(deps) -> Work``) the work core runs for it, wherever jobs run.
    work: tuple[str, ...] = ()
    # Long-lived loops ``opslab serve`` starts for it: ``(runtime, settings) -> Service`` (start, stop).
    services: tuple[str, ...] = ()
    # API routers, mounted in this order (a more specific path before a general one).
    api: tuple[str, ...] = ()
    # Dashboard routers under /ui.
    ui: tuple[str, ...] = ()
    # Commands: (name under `opslab`, Typer app).
    cli: tuple[tuple[str, str], ...] = ()
    # Tables holding its state (``opslab.store.tables``).
    tables: tuple[str, ...] = ()

    def owns_setting(self, field: str) -> bool:
        return any(field.startswith(s) if s.endswith("_") else field == s for s in self.settings)


# The service itself: what every capability stands on (settings of the process, the job and lease core).
PLATFORM = Capability(
    name="service",
    summary="the HTTP service, its access control, its database, the work core and its workers",
    settings=(
        "env",
        "env_file",
        "port",
        "log_level",
        "data_dir",
        "database_url",
        "redis_url",
        "api_token",
        "read_token",
        "public_reads",
        "ui_session_",
        "max_body_bytes",
        "max_batch_items",
        "max_otlp_spans",
        "otlp_sidecar",
        "max_in_flight",
        "access_log",
        "job_",
        "service_lease_s",
        "artifact_store",
        "url",
        "llm_",
    ),
    work=("opslab.jobs:task_work",),
    api=("opslab.api.routes.root:router",),
    ui=("opslab.api.ui.session:router",),
    tables=("jobs", "job_events", "leases", "service_state"),
)

CAPABILITIES: tuple[Capability, ...] = (
    Capability(
        name="telemetry",
        summary="agent-run telemetry (native JSON, OTLP), timelines, fleet metrics, and RCA as jobs",
        settings=("ingest_secret", "redact_", "price_table", "rca_"),
        work=("opslab.rca:rca_work",),
        # RCA before telemetry: /agent-runs/rca-runs/{id} is not a run called "rca-runs".
        api=(
            "opslab.api.routes.rca:router",
            "opslab.api.routes.telemetry:router",
            "opslab.api.routes.otlp:router",
            "opslab.api.routes.metrics:router",
        ),
        ui=("opslab.api.ui.runs:router",),
        cli=(
            ("runs", "opslab.cli.runs:runs_app"),
            ("metrics", "opslab.cli.runs:metrics_app"),
            ("rca", "opslab.cli.rca:rca_app"),
        ),
        tables=(
            "agent_runs",
            "run_steps",
            "tool_calls",
            "guardrail_events",
            "run_tags",
            "run_scores",
            "otel_traces",
            "otel_logs",
        ),
    ),
    Capability(
        name="lab",
        summary="experiments: your harness over tasks × variants × replications, isolated and resumable",
        settings=("lab_", "runner_bin"),
        work=("opslab.lab:lab_work",),
        api=("opslab.api.routes.lab:router",),
        ui=("opslab.api.ui.experiments:router",),
        cli=(("lab", "opslab.cli.lab_commands:lab_app"),),
        tables=("lab_runs",),
    ),
    Capability(
        name="canary",
        summary="A/B canaries on a live service: ABAB load, a statistical verdict, flags applied or not",
        settings=("canary_",),
        work=("opslab.canary:canary_work",),
        services=("opslab.api.background:canary_recovery",),
        api=("opslab.api.routes.canary:router",),
        ui=("opslab.api.ui.canaries:router",),
        cli=(("canary", "opslab.cli.canary:canary_app"),),
        tables=("canary_runs",),
    ),
    Capability(
        name="responder",
        summary="an incident responder: detect, diagnose with runbooks, act through an action server, verify",
        settings=("responder_", "action_token"),
        work=("opslab.runtime:responder_command_work",),
        services=("opslab.api.background:responder_service",),
        api=("opslab.api.routes.agent:router",),
        ui=("opslab.api.ui.incidents:router",),
        cli=(("responder", "opslab.cli.responder:responder_app"),),
        tables=("incidents", "responder_audit"),
    ),
    Capability(
        name="autoops",
        summary="build-pipeline agents: a monitor, a configuration optimizer, a fix responder, a controller",
        settings=("autoops_",),
        services=("opslab.api.background:autoops_loop",),
        api=("opslab.api.routes.autoops:router",),
        ui=("opslab.api.ui.builds:router",),
        cli=(("autoops", "opslab.cli.autoops:autoops_app"),),
        tables=("autoops_builds", "autoops_state"),
    ),
    Capability(
        name="knowledge",
        summary="runbooks and past incidents as Markdown, indexed and retrieved (RCA, responder, autoops)",
        settings=("knowledge_",),
        cli=(("kb", "opslab.cli.kb:kb_app"),),
        tables=("knowledge_documents",),
    ),
    Capability(
        name="sandbox",
        summary="the demo world: a target service, its dependency, a chaos server and an action server",
        cli=(("sandbox", "opslab.cli.sandbox_commands:sandbox_app"),),
    ),
)


def load(ref: str) -> object:
    """The object ``"package.module:attribute"`` names, its module imported now."""
    module, _, attribute = ref.partition(":")
    if not module or not attribute:
        raise ValueError(f"{ref!r} is not 'module:attribute'")
    return getattr(import_module(module), attribute)


def owner_of_setting(field: str) -> Capability:
    """The capability whose settings section holds ``field`` (the service's own when none claims it)."""
    return next((c for c in CAPABILITIES if c.owns_setting(field)), PLATFORM)
