"""The controller: one pipeline pass (monitor → optimizer → responder), the seed's three lines, and the
learning loop around it. Builds come from a ``BuildRunner`` (the simulated CI runner of ``simulator.py``, or
any object with the same two methods); every build, simulated or reported by a real CI, is kept in a
``BuildLog`` and teaches the optimizer."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, Field

from opslab.autoops.fixes import suggest_fix
from opslab.autoops.metrics import BuildFigures, BuildGroup, StoreFigures
from opslab.autoops.model import (
    ACTIONS,
    Action,
    BuildConfig,
    BuildContext,
    BuildRecord,
    BuildResult,
    BuildSource,
    BuildStatus,
)
from opslab.autoops.optimizer import Choice
from opslab.autoops.selection import Optimizer
from opslab.autoops.suggestion import Chat, FixRequest, FixSuggestion
from opslab.errors import InvalidInput
from opslab.knowledge import KnowledgeBase

PRIOR_STRENGTH = 2.0


class BuildRunner(Protocol):
    def sample_context(self) -> BuildContext: ...
    def run(self, config: BuildConfig, context: BuildContext) -> BuildResult: ...


class BuildLog(Protocol):
    def append(self, record: BuildRecord) -> None: ...
    def recent(self, *, limit: int = 100, status: BuildStatus | None = None) -> list[BuildRecord]: ...

    def success_rates(self, *, every: int, last: int) -> list[float]:
        """The success rate of each run of ``every`` builds in order, the newest ``last`` of them."""
        ...

    def count(self) -> dict[str, int]: ...

    def tally(self, bounds: Sequence[float]) -> list[BuildGroup]:
        """Every build kept, grouped by status and error class, with how many took at most each bound."""
        ...


class Observer(Protocol):
    """The build monitor's series: told of each build and choice, and given the shared figures to report."""

    def observe(self, result: BuildResult) -> None: ...
    def set_confidence(self, value: float) -> None: ...
    def attach(self, figures: BuildFigures) -> None: ...


class PipelinePass(BaseModel):
    """One pass of the seed's pipeline: what the monitor saw, what the optimizer chose for the next build,
    what the responder suggests (``None`` when the build succeeded)."""

    build: BuildRecord
    monitor: dict[str, object] = Field(description="The seed's {status, duration, error}.")
    optimizer: Choice
    responder: FixSuggestion | None


class AutoOps:
    def __init__(
        self,
        *,
        runner: BuildRunner,
        optimizer: Optimizer,
        knowledge: KnowledgeBase,
        builds: BuildLog,
        observer: Observer | None = None,
        chat: Chat | None = None,
    ) -> None:
        self.runner, self.optimizer, self.knowledge, self.builds = runner, optimizer, knowledge, builds
        self.observer, self.chat = observer, chat
        # What `opslab autoops status` and /metrics report: the store's figures, not this process's.
        self.figures = StoreFigures(builds, optimizer)
        if observer is not None:
            observer.attach(self.figures)

    def simulate(
        self,
        *,
        context: BuildContext | None = None,
        config: BuildConfig | None = None,
        action_id: int | None = None,
    ) -> BuildRecord:
        """Run one build: with ``config`` (or ``action_id``'s), else the optimizer's choice."""
        context = context or self.runner.sample_context()
        if config is None:
            if action_id is None:
                action_id = self.optimizer.choose(context).action_id
            config = action_by_id(action_id).config
        result = self.runner.run(config, context)
        return self.record(
            config=config, context=context, result=result, source="simulated", action_id=action_id
        )

    def record(
        self,
        *,
        config: BuildConfig,
        context: BuildContext,
        result: BuildResult,
        source: BuildSource,
        action_id: int | None = None,
    ) -> BuildRecord:
        """Keep a finished build and learn from it (a real CI's builds come in here too)."""
        if action_id is None:
            action_id = action_for(config)
        record = BuildRecord(
            build_id=uuid.uuid4().hex[:16],
            at=datetime.now(UTC),
            source=source,
            action_id=action_id,
            config=config,
            context=context,
            result=result,
        )
        self.builds.append(record)
        if action_id is not None:
            self.optimizer.update(context, action_id, result.status == "success")
        if self.observer is not None:
            self.observer.observe(result)
        return record

    def suggest(self, request: FixRequest) -> FixSuggestion:
        return suggest_fix(request, self.knowledge, chat=self.chat)

    def best(self, context: BuildContext) -> Choice:
        choice = self.optimizer.best(context)
        if self.observer is not None:
            self.observer.set_confidence(choice.confidence)
        return choice

    def run_once(self, context: BuildContext | None = None) -> PipelinePass:
        """The seed's pass: build; on failure ask the optimizer for the next configuration (conditioned on
        the failure) and the responder for a fix, whose configuration change becomes a prior."""
        record = self.simulate(context=context)
        result = record.result
        fix: FixSuggestion | None = None
        next_context = record.context.model_copy(update={"last_error_class": result.error_class})
        if result.status == "failed" and result.error:
            fix = self.suggest(
                FixRequest(error=result.error, status="failed", error_class=result.error_class)
            )
            suggested = action_for_change(fix.config_change) if fix.config_change else None
            if suggested is not None:
                self.optimizer.prior(next_context, suggested, PRIOR_STRENGTH)
        choice = self.best(next_context)
        monitor = {"status": result.status, "duration": round(result.duration, 2), "error": result.error}
        return PipelinePass(build=record, monitor=monitor, optimizer=choice, responder=fix)


def action_by_id(action_id: int) -> Action:
    for action in ACTIONS:
        if action.action_id == action_id:
            return action
    raise InvalidInput.for_field("action_id", f"unknown action {action_id}; known: 0..{len(ACTIONS) - 1}")


def action_for(config: BuildConfig) -> int | None:
    """The catalog action with exactly this configuration (a real CI's build may match none)."""
    return next((a.action_id for a in ACTIONS if a.config == config), None)


def action_for_change(change: Mapping[str, object]) -> int | None:
    """The first catalog action whose configuration has every setting of ``change``."""
    for action in ACTIONS:
        settings = action.config.model_dump()
        if all(settings.get(k) == v for k, v in change.items()):
            return action.action_id
    return None
