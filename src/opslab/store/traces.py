"""An OTLP export written: its traces' spans and the runs they make (and those they no longer make), in one
transaction; the traces of a large export planned on two cores.

Of an export of at least ``SIDECAR_MIN_SPANS`` spans, the later traces (in trace-id order) go to the
store's sidecar (``opslab.sidecar``, forked when the service starts) in chunks (``CHUNKS``): it reads them
(a protobuf export's spans from its bytes: this process converts only its own), plans them as this
process would (``telemetry.plan_share``, with the same price table and redactor) and makes their runs'
rows. Meanwhile this process plans the first ``OWN_SHARE`` of the traces and writes them, then
writes each chunk's rows as they come back, and commits once: every row is written by this process, in
the one transaction. A chunk the sidecar could not plan (its function raised, or it is gone) is planned
here: the export is written the same either way, and in the same order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

from sqlalchemy import Connection

from opslab.sidecar import Sidecar, SidecarError, SidecarGone
from opslab.store.bulk import Batch
from opslab.store.locks import TRACES, lock_keys
from opslab.store.rows import RunRows
from opslab.store.spans import add_spans, spans_of_traces
from opslab.store.upsert import drop_stale_trace_runs, upsert_rows, upsert_runs
from opslab.telemetry import ExportPlanner, ExportShare, PreparedRun, Span, TracePlan, UpsertStatus

SIDECAR_MIN_SPANS = 256
# The sidecar's share in chunks of these relative sizes, largest first: this process plans and writes its
# own share while the first is planned, and after the last comes back it has only that small one to write
# before the commit.
CHUNKS = (4, 3, 2, 1)
# This process also writes every row, so it plans the smaller share. Measured on two cores with exports of
# 2,000 spans (in-process, medians of five fresh runs of 20 exports): a quarter here 30.5 ms an export,
# a third 26.4, two fifths 25.3 (equal or shrinking chunks alike, within the noise), nine twentieths 26.9.
OWN_SHARE = 0.4

SharePlanner = Callable[[ExportShare, Mapping[str, list[Span]]], TracePlan]


@dataclass(frozen=True, slots=True)
class ShareJob:
    """A chunk of an export's traces for the sidecar, with what is stored of them."""

    share: ExportShare
    stored: dict[str, list[Span]]
    dialect: str  # the rows' (``RunRows.of``)


@dataclass(frozen=True, slots=True)
class ShareRows:
    """A chunk planned in the sidecar: its plan with each run as a summary, and those runs' rows."""

    spans: int
    traces: dict[str, str]
    rejected: list[str]
    refused: list[tuple[int, str]]
    runs: list[tuple[str, str, str, str]]  # run id, status, content hash, source
    rows: list[Batch]  # their rows, grouped for the driver

    def plan(self) -> TracePlan:
        summaries = [PreparedRun.summary(*run) for run in self.runs]  # type: ignore[arg-type]
        return TracePlan(self.spans, self.traces, summaries, self.rejected, self.refused)


def share_work(planner: SharePlanner) -> Callable[[ShareJob], ShareRows]:
    """The sidecar's work: a chunk planned by ``planner`` and its runs made into rows."""

    def work(job: ShareJob) -> ShareRows:
        plan = planner(job.share, job.stored)
        return ShareRows(
            plan.spans,
            plan.traces,
            plan.rejected,
            plan.refused,
            [(p.run_id, p.status, p.content_hash, p.source) for p in plan.runs],
            RunRows.of(job.dialect, plan.runs).batches(),
        )

    return work


def write_traces(
    conn: Connection, export: ExportPlanner, sidecar: Sidecar | None
) -> tuple[TracePlan, dict[str, UpsertStatus]]:
    """``RunRepository.write_traces`` in the transaction ``conn`` holds."""
    trace_ids = export.trace_ids
    lock_keys(conn=conn, kind=TRACES, keys=trace_ids)
    stored = spans_of_traces(conn=conn, trace_ids=trace_ids)
    plan, statuses = TracePlan(), dict[str, UpsertStatus]()
    use = (
        sidecar if sidecar is not None and export.spans >= SIDECAR_MIN_SPANS and len(trace_ids) > 1 else None
    )
    with use.claim() if use is not None else nullcontext(False) as ours:
        own = max(1, round(len(trace_ids) * OWN_SHARE)) if ours else len(trace_ids)
        chunks = _chunks(trace_ids[own:])
        sent = _submit(use, export, chunks, stored, conn.dialect.name) if ours and use is not None else 0
        _write(conn, export.plan(stored, trace_ids[:own]), None, stored, plan, statuses)
        for k, chunk in enumerate(chunks):
            done = _result(use) if k < sent and use is not None else None
            if done is None:  # not sent, or not planned there: planned here, in its turn
                _write(conn, export.plan(stored, chunk), None, stored, plan, statuses)
            else:
                _write(conn, done.plan(), done.rows, stored, plan, statuses)
    return plan, statuses


def _chunks(trace_ids: Sequence[str]) -> list[Sequence[str]]:
    """``trace_ids`` in ``len(CHUNKS)`` chunks sized by its weights (empty ones left out)."""
    n, total = len(trace_ids), sum(CHUNKS)
    bounds = list(itertools.accumulate(CHUNKS, initial=0))
    return [c for a, b in itertools.pairwise(bounds) if (c := trace_ids[a * n // total : b * n // total])]


def _result(sidecar: Sidecar) -> ShareRows | None:
    try:
        done: ShareRows = sidecar.result()
    except (SidecarGone, SidecarError):
        return None
    return done


def _submit(
    sidecar: Sidecar,
    export: ExportPlanner,
    chunks: list[Sequence[str]],
    stored: Mapping[str, list[Span]],
    dialect: str,
) -> int:
    """The chunks to the sidecar, in order; how many it took (the rest are planned here)."""
    for k, chunk in enumerate(chunks):
        job = ShareJob(export.share(chunk), {t: stored[t] for t in chunk if stored.get(t)}, dialect)
        try:
            sidecar.submit(job)
        except SidecarGone:
            return k
    return len(chunks)


def _write(
    conn: Connection,
    part: TracePlan,
    rows: list[Batch] | None,
    stored: Mapping[str, list[Span]],
    plan: TracePlan,
    statuses: dict[str, UpsertStatus],
) -> None:
    """Keep a planned part's spans and make its runs its traces' OTLP runs (``rows``: made already)."""
    if part.traces:
        add_spans(conn=conn, traces=part.traces, stored=stored)
    # A trace has OTLP runs only while its spans are stored (``removal`` deletes them together): a trace
    # new to the store has none its spans no longer make.
    remapped = [t for t in part.traces if stored.get(t)]
    if remapped:
        drop_stale_trace_runs(conn=conn, trace_ids=remapped, keep={p.run_id for p in part.runs})
    if part.runs:
        ids = [p.run_id for p in part.runs]
        statuses.update(
            upsert_rows(conn=conn, ids=ids, rows=rows)
            if rows is not None
            else upsert_runs(conn=conn, runs=part.runs)
        )
    plan.extend(part)
