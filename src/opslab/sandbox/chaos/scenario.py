"""Chaos scenarios: chaostoolkit experiments (``chaos run`` runs them as they are) whose ``opslab``
extension carries the ``expected`` outcome a scorer alone reads.

A scenario file is a standard experiment: ``version``, ``title``, ``description``, ``configuration``
(the chaos server's and the target's URLs, each from the environment with a default), ``secrets`` (the
chaos server's token from ``SANDBOX_CHAOS_TOKEN``), a ``steady-state-hypothesis`` (probes of the
target's health and latency), a ``method`` and ``rollbacks`` of HTTP activities with absolute URLs, JSON
bodies (``Content-Type: application/json``) and the token in an ``Authorization`` header, and
``extensions: [{name: opslab, expected: ...}]``.
Older files with a top-level ``expected`` and relative URLs still load.

``load_scenarios()`` reads and validates every ``*.yaml`` of a folder (the packaged ``scenarios/`` by
default); a bad file is an ``InvalidInput`` naming the file and the field. ``run_method`` performs a
scenario's method against a given chaos server (its URL and token replace the file's) and returns the
ids of the breaks it started. It neither judges the steady-state hypothesis (its probes may be HTTP calls
or the ``python`` probes of ``chaos.probes``) nor plays the ``rollbacks`` (each stops its method's breaks:
``POST <chaos url>/api/v1/break/<fault>/stop``): its caller watches the target and stops the breaks."""

from __future__ import annotations

import re
import time
from importlib import resources
from pathlib import Path
from typing import Literal

import httpx
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from opslab.errors import InvalidInput, OperationFailed, Unavailable, from_wire, invalid_from_pydantic
from opslab.sandbox.actions import ACTION_NAMES
from opslab.sandbox.chaos.breaks import FAULT_NAMES

Category = Literal[
    "db_pool_exhaustion", "bad_deploy", "latency_regression", "memory_leak", "dependency_outage", "none"
]
BREAK_PREFIX = "/api/v1/break/"
_BREAK = re.compile(r"/api/v1/break/([A-Za-z0-9_\-]+)/?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Pauses(_Model):
    before: float = Field(default=0.0, ge=0, le=600)
    after: float = Field(default=0.0, ge=0, le=600)


class HttpProvider(_Model):
    type: Literal["http"] = "http"
    url: str
    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    timeout: float | list[float] = 10.0
    expected_status: int | None = None
    verify_tls: bool = True
    max_retries: int = Field(default=0, ge=0, le=10)

    @property
    def path(self) -> str:
        """The URL without its scheme, host and any ``${...}`` prefix: what a chaos server serves."""
        match = re.search(r"/api/v1/\S*", self.url)
        return match.group(0) if match else self.url


class PythonProvider(_Model):
    """A function chaostoolkit imports and calls (the packaged scenarios' probes: ``chaos.probes``)."""

    type: Literal["python"]
    module: str
    func: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class Probe(_Model):
    type: Literal["probe"] = "probe"
    name: str
    tolerance: JsonValue = None
    provider: HttpProvider | PythonProvider
    secrets: list[str] = Field(default_factory=list)
    pauses: Pauses = Field(default_factory=Pauses)


class SteadyState(_Model):
    title: str
    probes: list[Probe] = Field(default_factory=list)


class Activity(_Model):
    """One step of the method: a chaos-server call (``<chaos url>/api/v1/break/<fault>``)."""

    type: Literal["action"] = "action"
    name: str
    provider: HttpProvider
    pauses: Pauses = Field(default_factory=Pauses)
    secrets: list[str] = Field(default_factory=list)
    background: bool = False

    @field_validator("provider")
    @classmethod
    def _breaks_a_known_fault(cls, provider: HttpProvider) -> HttpProvider:
        match = _BREAK.search(provider.url)
        if match is None:
            raise ValueError(f"url must be <chaos server>{BREAK_PREFIX}<fault>")
        if match.group(1) not in FAULT_NAMES:
            raise ValueError(f"unknown fault {match.group(1)!r} (known: {', '.join(FAULT_NAMES)})")
        return provider

    @property
    def fault(self) -> str:
        match = _BREAK.search(self.provider.url)
        return match.group(1) if match else ""


class Expected(_Model):
    category: Category
    also: list[Category] = Field(
        default_factory=list, description="More categories a right diagnosis names (faults at once)."
    )
    root_cause: str
    remediations: list[str] = Field(default_factory=list)
    control: bool = False
    outcome: Literal["resolved", "escalated"] = Field(
        "resolved", description="escalated: no available action can hold (a drill of the escalation path)."
    )

    @property
    def categories(self) -> list[str]:
        return [c for c in (self.category, *self.also) if c != "none"]

    @field_validator("remediations")
    @classmethod
    def _known_actions(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in ACTION_NAMES]
        if unknown:
            raise ValueError(f"unknown actions {unknown} (known: {', '.join(ACTION_NAMES)})")
        return names


class Extension(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class Scenario(_Model):
    name: str = Field(description="The file's stem: `db-pool-exhaustion`.")
    version: str | None = None
    title: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    contributions: dict[str, JsonValue] | None = None
    configuration: dict[str, JsonValue] = Field(default_factory=dict)
    secrets: dict[str, JsonValue] = Field(default_factory=dict)
    controls: list[JsonValue] = Field(default_factory=list)
    runtime: dict[str, JsonValue] | None = None
    extensions: list[Extension] = Field(default_factory=list)
    steady_state_hypothesis: SteadyState | None = Field(default=None, alias="steady-state-hypothesis")
    method: list[Activity] = Field(min_length=1)
    rollbacks: list[JsonValue] = Field(default_factory=list)
    expected: Expected = Field(
        default_factory=lambda: Expected(
            category="none",
            root_cause="(an experiment without an opslab key)",
            remediations=list(ACTION_NAMES),
        ),
        description="The scoring key; an experiment without one is run and reported, any action accepted.",
    )

    @model_validator(mode="before")
    @classmethod
    def _expected_from_extension(cls, data: object) -> object:
        """The key lives in the ``opslab`` extension (a top-level ``expected`` is the older shape)."""
        if isinstance(data, dict) and "expected" not in data:
            for ext in data.get("extensions") or []:
                if isinstance(ext, dict) and ext.get("name") == "opslab" and "expected" in ext:
                    return {**data, "expected": ext["expected"]}
        return data

    @property
    def faults(self) -> list[str]:
        return [a.fault for a in self.method]


def scenarios_folder() -> Path:
    return Path(str(resources.files("opslab.sandbox.chaos") / "scenarios"))


def load_scenario(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput.for_field(str(path), f"not a readable YAML file: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput.for_field(str(path), "must be a mapping (a chaostoolkit experiment)")
    try:
        return Scenario.model_validate({"name": path.stem, **data})
    except ValidationError as exc:
        err = invalid_from_pydantic(list(exc.errors(include_url=False)))
        raise InvalidInput(
            f"{path.name}: {err.message}", details={"file": str(path), **err.details}
        ) from None


def load_scenarios(folder: Path | None = None) -> list[Scenario]:
    """Every scenario of ``folder`` (default: the packaged ones), sorted by name."""
    folder = folder or scenarios_folder()
    if not folder.is_dir():
        raise InvalidInput.for_field("folder", f"not a folder: {folder}")
    return [load_scenario(p) for p in sorted(folder.glob("*.yaml"))]


def run_method(scenario: Scenario, chaos_url: str, token: str) -> list[str]:
    """Perform the scenario's method on the chaos server at ``chaos_url`` with its ``token`` (whatever
    host and credentials the file names); the ids of the breaks started."""
    ids: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    last = len(scenario.method) - 1
    with httpx.Client(base_url=chaos_url.rstrip("/"), headers=headers) as client:
        for n, activity in enumerate(scenario.method):
            time.sleep(activity.pauses.before)
            p = activity.provider
            timeout = p.timeout if isinstance(p.timeout, float | int) else max(p.timeout)
            try:
                r = client.request(p.method, p.path, json=p.arguments, timeout=timeout)
            except httpx.HTTPError as exc:
                raise Unavailable(f"chaos server unreachable at {chaos_url}: {exc}") from None
            if r.status_code >= 400:
                raise from_wire(r.status_code, r.json())
            brk = r.json()
            if not isinstance(brk, dict) or "id" not in brk:
                raise OperationFailed(f"{activity.name}: the chaos server answered no break id")
            ids.append(str(brk["id"]))
            if n < last:
                # The last pause only gives the fault time to show before chaostoolkit's after-hypothesis;
                # whoever calls this watches the target from the moment the breaks are in.
                time.sleep(activity.pauses.after)
    return ids
