"""Typed work: what a capability plugs into the job machinery.

A ``WorkKind[P, R]`` names a kind of long work, its payload model ``P`` (a ``Payload``: closed, versioned)
and its result type ``R`` (a pydantic model, or a union of them); bound to the function that does it, it
is a ``Work[P, R]``::

    RCA = WorkKind("rca", RcaPayload, RcaReport, done_step="RCA complete")
    job, created = jobs.submit(RCA.new(RcaPayload(run_id=…, content_hash=…), subject=run_id))
    report = RCA.result_of(jobs.get(job.id))  # RcaReport | None
    work = RCA.bind(analyse)                  # in rca/job.py, from the runtime's dependencies

The function gets the payload already validated and a ``WorkContext``: ``report()`` progress, and two
events to watch between steps — ``cancelled`` (someone asked ``POST …/{id}/cancel``) and ``stopping`` (the
process is shutting down). Work that leaves something half-changed (a canary's flags, a lab run's
trials) watches both, puts things back and returns what it has, or raises ``Cancelled``. Whatever it
returns after a cancel is kept with the ``cancelled`` state, so a cancelled lab run keeps its finished
trials.

Each capability's ``job.py`` exports a ``WorkFactory``: given the runtime's ``WorkDeps`` it builds its
``Work``, so the runtime wires the I/O (model client, queues, targets) and the work never reads the
environment itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

if TYPE_CHECKING:
    from opslab.config import Settings
    from opslab.jobs.model import Job, NewJob
    from opslab.llm import ChatClient
    from opslab.telemetry import RunRepository


class Payload(BaseModel):
    """Base of every work payload: typed, closed (an unknown field is an error), versioned."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = Field(1, ge=1, description="Version of this payload's shape.")


P = TypeVar("P", bound=Payload)
R = TypeVar("R")


class Cancelled(Exception):  # noqa: N818 - a state, like asyncio.CancelledError
    """Raised by work that stopped because it was cancelled; ``result`` (if any) is kept."""

    def __init__(self, reason: str = "cancelled", result: object | None = None) -> None:
        super().__init__(reason)
        self.reason, self.result = reason, result


class WorkContext(Protocol):
    """Handed to the work: ``ctx.report("Collecting evidence", 30)``, and what to watch."""

    @property
    def job_id(self) -> str: ...

    @property
    def attempt(self) -> int:
        """1 for the first attempt; more after a retry or a lost worker."""
        ...

    @property
    def cancelled(self) -> threading.Event:
        """Set when a cancel was asked: stop, put back what you changed, return what you have."""
        ...

    @property
    def stopping(self) -> threading.Event:
        """Set when the process shuts down: the same, and the job runs again elsewhere."""
        ...

    def report(self, step: str, pct: float, message: str | None = None) -> None: ...


@dataclass(frozen=True)
class WorkKind(Generic[P, R]):
    """A kind of work as the rest of the system sees it: its name, its payload and result types, its step
    names. Routes submit with ``new`` and read with ``result_of``; ``bind`` gives it the function that does
    it (in the capability's ``job.py``, built from the runtime's dependencies)."""

    kind: str
    payload: type[P]
    result: Any  # the result's type: a model class or a union of them (R)
    done_step: str = "Complete"
    failed_step: str = "Failed"
    max_attempts: int = 3
    # Work a leased service must do (the responder's commands): it is not queued for any worker; the
    # process holding that service's lease takes it (``LeasedService``), wherever it was submitted.
    service: str | None = None

    def new(
        self,
        payload: P,
        *,
        subject: str | None = None,
        group_id: str | None = None,
        dedupe_key: str | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        force: bool = False,
    ) -> NewJob:
        from opslab.jobs.model import NewJob

        return NewJob(
            kind=self.kind,
            payload=payload.model_dump(mode="json"),
            subject=subject,
            group_id=group_id,
            dedupe_key=dedupe_key,
            idempotency_key=idempotency_key,
            max_attempts=max_attempts or self.max_attempts,
            force=force,
        )

    def payload_of(self, job: Job) -> P:
        return self.payload.model_validate(job.payload)

    def result_of(self, job: Job) -> R | None:
        """The typed result of a job that has one (succeeded, or cancelled with what it kept)."""
        if job.result is None or job.status not in ("succeeded", "cancelled"):
            return None
        value: R = _adapter(self.result).validate_python(job.result)
        return value

    def dump(self, result: object) -> dict[str, Any] | None:
        if result is None:
            return None
        data = _adapter(self.result).dump_python(result, mode="json")
        return data if isinstance(data, dict) else {"value": data}

    def bind(self, run: Callable[[P, WorkContext], R]) -> Work[P, R]:
        return Work(self, run)


@dataclass(frozen=True)
class Work(Generic[P, R]):
    """A ``WorkKind`` with the function that does it: what a runner executes."""

    spec: WorkKind[P, R]
    run: Callable[[P, WorkContext], R]

    @property
    def kind(self) -> str:
        return self.spec.kind

    def execute(self, payload: dict[str, Any], ctx: WorkContext) -> dict[str, Any] | None:
        """Validate, run, and dump the result as JSON data (what the job row keeps)."""
        return self.spec.dump(self.run(self.spec.payload.model_validate(payload), ctx))


_ADAPTERS: dict[int, TypeAdapter[Any]] = {}
_ADAPTERS_LOCK = threading.Lock()


def _adapter(tp: Any) -> TypeAdapter[Any]:
    with _ADAPTERS_LOCK:
        found = _ADAPTERS.get(id(tp))
        if found is None:
            found = _ADAPTERS[id(tp)] = TypeAdapter(tp)
        return found


class WorkDeps(Protocol):
    """What the runtime gives every work factory."""

    @property
    def settings(self) -> Settings: ...

    @property
    def runs(self) -> RunRepository: ...

    def chat_model(self) -> ChatClient | None:
        """The configured OpenAI-compatible model, or None when no LLM is configured."""
        ...


AnyWork = Work[Any, Any]
WorkFactory = Callable[[Any], AnyWork]  # each factory types its own deps (a WorkDeps or more)


class Works(Mapping[str, AnyWork]):
    """The work kinds by name, made by ``make`` when first asked for (once, whichever thread asks first): a
    process that runs and routes no job (``opslab runs list``) never imports the capabilities' work — the
    RCA's scorer, the lab's runner, the canary — which cost such a command a sixth of its start-up."""

    def __init__(self, make: Callable[[], Iterable[AnyWork]]) -> None:
        self._make = make
        self._made: dict[str, AnyWork] | None = None
        self._lock = threading.Lock()
        self.services = _ServiceKinds(self)

    def load(self) -> None:
        """Make them now (a long-lived process, in its set-up)."""
        self._kinds()

    def _kinds(self) -> dict[str, AnyWork]:
        made = self._made
        if made is None:
            with self._lock:
                if self._made is None:
                    self._made = {work.kind: work for work in self._make()}
                made = self._made
        return made

    def __getitem__(self, kind: str) -> AnyWork:
        return self._kinds()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds())

    def __len__(self) -> int:
        return len(self._kinds())


class _ServiceKinds:
    """The kinds a leased service takes itself (``WorkKind.service``), asked of ``Works`` when routed."""

    def __init__(self, works: Works) -> None:
        self._works = works

    def __contains__(self, kind: object) -> bool:
        work = self._works.get(kind) if isinstance(kind, str) else None
        return work is not None and bool(work.spec.service)
