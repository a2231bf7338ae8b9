"""AutoOps on the wire: what its routes accept and answer (the service and the client share them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opslab.autoops.model import BuildConfig, BuildContext, BuildRecord, BuildStatus, ErrorClass


class SimulateBuildIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    action_id: int | None = Field(None, ge=0, description="Build with this catalog action's configuration.")
    config: BuildConfig | None = Field(None, description="Or with this configuration.")
    context: BuildContext | None = Field(None, description="The pipeline; default: the simulator draws one.")


class SimulatedBuild(BaseModel):
    status: BuildStatus
    duration: float
    error: str | None
    error_class: ErrorClass | None
    build_id: str
    action_id: int | None
    config: BuildConfig
    context: BuildContext

    @classmethod
    def of(cls, r: BuildRecord) -> SimulatedBuild:
        return cls(
            status=r.result.status,
            duration=round(r.result.duration, 3),
            error=r.result.error,
            error_class=r.result.error_class,
            build_id=r.build_id,
            action_id=r.action_id,
            config=r.config,
            context=r.context,
        )


class BuildIn(BaseModel):
    """A finished build from any CI."""

    model_config = ConfigDict(extra="forbid", strict=True)

    config: BuildConfig
    context: BuildContext
    status: BuildStatus
    duration: float = Field(ge=0, le=7 * 24 * 3600, description="Seconds.")
    error: str | None = Field(None, max_length=20_000)
    error_class: ErrorClass | None = None


class BuildAccepted(BaseModel):
    build_id: str
    action_id: int | None = Field(description="The catalog action with this configuration, if any.")


class LoopIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    builds: int = Field(100, ge=1, le=1_000_000, description="Build budget of this loop.")
    interval_s: float = Field(0.0, ge=0, le=3600, description="Pause between two builds.")


class LoopState(BaseModel):
    state: Literal["idle", "running", "stopping", "finished"]
    budget: int = 0
    done: int = 0
    succeeded: int = 0
    interval_s: float = 0.0
    last_error: str | None = None
    holder: str | None = Field(None, description="The replica running the builds (it holds the lease).")


class AutoOpsStatus(BaseModel):
    builds: dict[str, int] = Field(description="Builds kept, by status.")
    success_rate: float | None
    loop: LoopState
    recent: list[BuildRecord]
