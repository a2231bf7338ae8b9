"""The remediations the action server offers: each a name, a risk, a JSON Schema for its params and the
act itself. Acts reach the target through its admin routes and restarts through ``Processes`` (the
supervisor), never anything else; an act that cannot do its job raises an ``opslab.errors`` exception,
which the server records as a failed action (a value), not as an HTTP error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import fastjsonschema
from pydantic import JsonValue

from opslab.errors import InvalidInput, OpslabError, Unavailable
from opslab.sandbox.admin import AdminClient
from opslab.sandbox.hoststat import HostStats, ProcessStats

Risk = Literal["low", "medium", "high"]
Params = dict[str, JsonValue]


class Processes(Protocol):
    """What restarts and watches a sandbox process (the supervisor): ``name`` is ``target`` or
    ``dependency``; a restart's answer says what happened (old and new pid)."""

    def restart(self, name: str) -> str: ...

    def liveness(self, name: str) -> ProcessStats: ...

    def host_stats(self) -> HostStats: ...


@dataclass
class ActionContext:
    target: AdminClient
    processes: Processes | None

    def restart(self, name: str) -> str:
        if self.processes is None:
            raise Unavailable(f"cannot restart the {name}: this action server runs without a supervisor")
        return self.processes.restart(name)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    description: str
    risk: Risk
    params_schema: dict[str, Any]
    act: Callable[[ActionContext, Params], str]
    validator: Callable[[Any], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "validator", fastjsonschema.compile(self.params_schema))

    def describe(self) -> dict[str, JsonValue]:
        return {
            "name": self.name,
            "description": self.description,
            "risk": self.risk,
            "params_schema": self.params_schema,
        }

    def validate(self, params: Params) -> None:
        """Refuse params outside the schema with a 422 naming the field (nothing is done then)."""
        try:
            self.validator(params)
        except fastjsonschema.JsonSchemaValueException as exc:
            props = self.params_schema.get("properties", {})
            name = str(exc.name).removeprefix("data").lstrip(".")
            if exc.rule == "required":
                name = next((k for k in self.params_schema.get("required", []) if k not in params), name)
                raise InvalidInput.for_field(name, "required") from None
            if exc.rule == "additionalProperties":
                name = next((k for k in params if k not in props), name)
                raise InvalidInput.for_field(name, f"not a parameter of {self.name}") from None
            message = str(exc.message).replace("data.", "").removeprefix("data ")
            raise InvalidInput.for_field(name or "body", message) from None


def _schema(properties: dict[str, Any] | None = None, required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties or {},
        "required": list(required),
        "additionalProperties": False,
    }


def recycle_pool(ctx: ActionContext, _: Params) -> str:
    released = ctx.target.post("/admin/pool/recycle")["released"]
    return f"connection pool recycled: {released} leaked connections released"


def scale_pool(ctx: ActionContext, params: Params) -> str:
    pool = ctx.target.post("/admin/pool/resize", {"size": params["size"]})
    return f"connection pool resized to {pool['size']} ({pool['checked_out']} checked out)"


def restart_target(ctx: ActionContext, _: Params) -> str:
    return ctx.restart("target")


def restart_dependency(ctx: ActionContext, _: Params) -> str:
    return ctx.restart("dependency")


def rollback_deploy(ctx: ActionContext, _: Params) -> str:
    deploy = ctx.target.post("/admin/deploy/rollback")
    return f"rolled back to release {deploy['version']} (from {deploy['previous']})"


def disable_flag(ctx: ActionContext, params: Params) -> str:
    ctx.target.post("/admin/flags", {str(params["flag"]): False})
    return f"flag {params['flag']} disabled"


def remediate_db_pool(ctx: ActionContext, params: Params) -> str:
    """The seed's action: ``{"action": "escalate_to_db_restart"}`` or ``?escalate_to_db_restart=true``
    restarts the target (its database client and pool); otherwise the pool is recycled."""
    if params.get("action") == "escalate_to_db_restart" or params.get("escalate_to_db_restart") is True:
        return "escalated to a database restart: " + restart_target(ctx, params)
    return recycle_pool(ctx, params)


CATALOG: tuple[ActionSpec, ...] = (
    ActionSpec(
        "remediate-db-pool-exhaustion",
        "Fix an exhausted connection pool: recycle it, or escalate to restarting the database client "
        "(the target process): high risk, since it may restart.",
        "high",
        _schema(
            {
                "action": {"enum": ["recycle_pool", "escalate_to_db_restart"]},
                "escalate_to_db_restart": {"type": "boolean"},
            }
        ),
        remediate_db_pool,
    ),
    ActionSpec(
        "recycle-pool", "Close leaked connections and dispose the pool.", "low", _schema(), recycle_pool
    ),
    ActionSpec(
        "scale-pool",
        "Replace the pool by one of another size.",
        "medium",
        _schema({"size": {"type": "integer", "minimum": 1, "maximum": 50}}, ("size",)),
        scale_pool,
    ),
    ActionSpec("restart-target", "Restart the target process.", "high", _schema(), restart_target),
    ActionSpec(
        "rollback-deploy",
        "Roll the target back to its previous release.",
        "medium",
        _schema(),
        rollback_deploy,
    ),
    ActionSpec(
        "disable-flag",
        "Turn a feature flag off.",
        "low",
        _schema({"flag": {"enum": ["new_ranking"]}}, ("flag",)),
        disable_flag,
    ),
    ActionSpec("restart-dependency", "Restart the pricing service.", "medium", _schema(), restart_dependency),
)
ACTIONS: dict[str, ActionSpec] = {a.name: a for a in CATALOG}
ACTION_NAMES: tuple[str, ...] = tuple(ACTIONS)


def run_act(spec: ActionSpec, ctx: ActionContext, params: Params) -> tuple[Literal["success", "error"], str]:
    """The act as a value: ``("success", detail)`` or ``("error", what went wrong)``."""
    try:
        return "success", spec.act(ctx, params)
    except OpslabError as exc:
        return "error", exc.message
