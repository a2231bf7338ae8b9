"""AutoOps' typed values: a build's configuration (what a pipeline chooses), its context (what the pipeline
is), its result, and the fixed catalog of actions the optimizer chooses among."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

ErrorClass = Literal["oom", "image_pull", "dependency_resolution", "flaky_test", "timeout"]
ERROR_CLASSES: tuple[ErrorClass, ...] = get_args(ErrorClass)
BuildStatus = Literal["success", "failed"]

# The seed's human texts for each failure class (its example prints "Out of memory during build").
ERROR_TEXTS: dict[ErrorClass, str] = {
    "oom": "Out of memory during build",
    "image_pull": "Docker image pull error: manifest unknown or registry timeout",
    "dependency_resolution": "Dependency resolution failed: conflicting versions",
    "flaky_test": "Test suite failed: flaky test",
    "timeout": "Build timed out",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _not_a_bool(value: object) -> object:
    # ``False == 0`` and ``True == 1`` in Python, so a literal of numbers would take a boolean for one.
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


class BuildConfig(_Model):
    cache: bool = False
    memory_gb: Annotated[Literal[2, 4, 8], BeforeValidator(_not_a_bool)] = 2
    parallelism: Annotated[Literal[1, 2, 4, 8], BeforeValidator(_not_a_bool)] = 4
    retries: Annotated[Literal[0, 1, 2], BeforeValidator(_not_a_bool)] = 0
    pinned_image: bool = False


class BuildContext(_Model):
    repo_size_mb: float = Field(500.0, ge=0, le=100_000)
    dependency_churn: float = Field(0.1, ge=0, le=1, description="Share of dependencies changed.")
    flaky_share: float = Field(0.02, ge=0, le=1, description="Share of tests known to be flaky.")
    last_error_class: ErrorClass | None = None


class BuildResult(_Model):
    status: BuildStatus
    duration: float = Field(ge=0, description="Seconds.")
    error: str | None = None
    error_class: ErrorClass | None = None


class Action(_Model):
    action_id: int = Field(ge=0)
    action_description: str
    config: BuildConfig


ACTIONS: tuple[Action, ...] = (
    Action(action_id=0, action_description="default configuration", config=BuildConfig()),
    Action(action_id=1, action_description="use cache", config=BuildConfig(cache=True)),
    Action(action_id=2, action_description="increase memory to 4GB", config=BuildConfig(memory_gb=4)),
    Action(
        action_id=3,
        action_description="increase memory to 8GB and use cache",
        config=BuildConfig(memory_gb=8, cache=True),
    ),
    Action(action_id=4, action_description="pin the base image", config=BuildConfig(pinned_image=True)),
    Action(action_id=5, action_description="retry failed tests twice", config=BuildConfig(retries=2)),
    Action(
        action_id=6,
        action_description="more parallelism (8) with cache",
        config=BuildConfig(parallelism=8, cache=True),
    ),
    Action(
        action_id=7,
        action_description="less parallelism (1), 4GB",
        config=BuildConfig(parallelism=1, memory_gb=4),
    ),
    Action(
        action_id=8,
        action_description="cache, pinned image, retries",
        config=BuildConfig(cache=True, pinned_image=True, retries=2),
    ),
    Action(
        action_id=9,
        action_description="8GB, cache, pinned image, retries",
        config=BuildConfig(memory_gb=8, cache=True, pinned_image=True, retries=2, parallelism=4),
    ),
)


def features(context: BuildContext) -> tuple[str, ...]:
    """The discrete context bucket the optimizer conditions on."""
    size = "large" if context.repo_size_mb >= 2_000 else "small"
    churn = "high" if context.dependency_churn >= 0.3 else "low"
    flaky = "high" if context.flaky_share >= 0.1 else "low"
    return (f"repo:{size}", f"churn:{churn}", f"flaky:{flaky}", f"last:{context.last_error_class or 'none'}")


BuildSource = Literal["simulated", "ci"]


class BuildRecord(BaseModel):
    schema_version: int = 1
    build_id: str
    at: datetime
    source: BuildSource
    action_id: int | None = None
    config: BuildConfig
    context: BuildContext
    result: BuildResult
