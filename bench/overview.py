"""GET /metrics/overview over 100,000 stored runs, on SQLite and PostgreSQL. Target: < 200 ms.

Runs are written straight through the repository (the ingest path is bench/ingest.py's business);
the overview is then timed over HTTP against `opslab serve`, beside the floor of the same
aggregates as hand-written SQL on the same database.

GET /metrics/series is timed in the same loop, one call after each overview call, over the same
windows (24 hours, the week the speed check asks for, 30 days). Target: its p50 at most twice the
overview's. Its peer: the series as three plain GROUP BY statements (what it ran before it read index
ranges on SQLite). ``series_vs_overview`` gives both p50s per window side by side with their ratio.

These runs have steps and tool calls, which the overview also reads (the p95 step latency, the failing
tools) and the series does not. ``runs_only`` is the case that leaves the series least room: 100,000
runs without steps, shaped as the speed check posts them (nine agents, one model, six days), both
endpoints timed over the week the same way.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench._common import fill_runs, scratch_postgres, service, write_result
from opslab.client import OpslabClient
from opslab.store import make_engine
from opslab.telemetry import AgentRunIn, FleetSeries, Overview

TOOLS = ["order_lookup_api", "payment_api", "inventory_check", "shipping_status_api", "search", "crm_update"]
# What the series groups cost by: a dozen models (and runs without one), twenty agents.
MODELS = [None, *(f"model-{i}" for i in range(12))]
AGENTS = [f"agent-{i:02d}" for i in range(20)]
SERIES_TARGET_RATIO = 2.0


def synth_runs(n: int, *, offset: int) -> list[AgentRunIn]:
    rng = random.Random(offset)
    names = random.Random(-1 - offset)  # its own stream: the other fields stay what they were
    now = datetime.now(UTC)
    runs = []
    for i in range(n):
        start = now - timedelta(minutes=rng.randint(0, 60 * 24 * 7))  # a week: the 24 h window holds ~1/7
        steps, calls = [], []
        for s in range(4):
            steps.append(
                {
                    "step_id": f"s{s}",
                    "name": f"step {s}",
                    "status": "success",
                    "latency_ms": rng.lognormvariate(7.5, 0.8),
                }
            )
            if s % 2:
                calls.append(
                    {
                        "call_id": f"c{s}",
                        "step_id": f"s{s}",
                        "tool_name": rng.choice(TOOLS),
                        "status": "failure" if rng.random() < 0.1 else "success",
                    }
                )
        runs.append(
            AgentRunIn.model_validate(
                {
                    "run_id": f"ov-{offset + i}",
                    "agent_name": names.choice(AGENTS),
                    "model": names.choice(MODELS),
                    "started_at": start,
                    "status": "success" if rng.random() < 0.8 else "failure",
                    "steps": steps,
                    "tool_calls": calls,
                    "cost": {"total_cost_usd": rng.random() / 100},
                }
            )
        )
    return runs


def synth_bare_runs(n: int, *, offset: int) -> list[AgentRunIn]:
    """Runs as the speed check posts them: no steps, nine agents, one model, over the six days before
    today (a fourth failed)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    runs = []
    for i in range(offset, offset + n):
        k = i % 1000
        runs.append(
            AgentRunIn.model_validate(
                {
                    "run_id": f"bare-{i}",
                    "agent_name": f"agent-{k % 9}",
                    "model": "gpt-4o-mini",
                    "status": "failure" if k % 4 == 0 else "success",
                    "started_at": today - timedelta(days=6 - k % 6) + timedelta(hours=k % 24, minutes=k % 60),
                    "cost": {"tokens_prompt": 100, "tokens_completion": 20, "total_cost_usd": 0.0001},
                }
            )
        )
    return runs


def fill(url: str, runs: int) -> float:
    return fill_runs(url, runs, synth_runs)


def naive_sql(url: str, since: datetime) -> float:
    """The peer: the same aggregates written the obvious way (sort every latency for the p95)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        start = time.perf_counter()
        p = {
            "since": since if conn.dialect.name == "postgresql" else since.replace(tzinfo=None).isoformat(" ")
        }
        conn.execute(
            text(
                "SELECT count(*), sum(CASE WHEN status = 'success' THEN 1 ELSE 0 END), sum(total_cost_usd) "
                "FROM agent_runs WHERE started_at >= :since"
            ),
            p,
        ).all()
        conn.execute(
            text(
                "SELECT tool_name, count(*) FROM tool_calls WHERE status IN ('failure','timeout') "
                "AND run_started_at >= :since GROUP BY tool_name ORDER BY 2 DESC LIMIT 5"
            ),
            p,
        ).all()
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM run_steps "
                    "WHERE run_started_at >= :since"
                ),
                p,
            ).all()
        else:
            conn.execute(
                text("SELECT latency_ms FROM run_steps WHERE run_started_at >= :since ORDER BY latency_ms"), p
            ).all()
        elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def naive_series_sql(url: str, since: datetime) -> float:
    """The series' peer: per day, by model, by agent, each a plain GROUP BY over the window."""
    engine = make_engine(url)
    with engine.connect() as conn:
        pg = conn.dialect.name == "postgresql"
        p = {"since": since if pg else since.replace(tzinfo=None).isoformat(" ")}
        day = "to_char(timezone('UTC', started_at), 'YYYY-MM-DD')" if pg else "substr(started_at, 1, 10)"
        start = time.perf_counter()
        conn.execute(
            text(
                f"SELECT {day} AS d, count(*), sum(CASE WHEN status = 'success' THEN 1 ELSE 0 END), "
                "sum(total_cost_usd) FROM agent_runs WHERE started_at >= :since GROUP BY d ORDER BY d"
            ),
            p,
        ).all()
        for key in ("model", "agent_name"):
            conn.execute(
                text(
                    f"SELECT coalesce({key}, '(none)') AS k, count(*), coalesce(sum(total_cost_usd), 0.0) "
                    "AS c FROM agent_runs WHERE started_at >= :since GROUP BY k ORDER BY c DESC, k LIMIT 8"
                ),
                p,
            ).all()
        elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def _ms(samples: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(samples), 1), "max": round(max(samples), 1)}


WINDOWS = (("24h", 24), ("168h", 24 * 7), ("all", 24 * 30))


def time_both(
    client: OpslabClient, hours: int, repeats: int
) -> tuple[list[float], list[float], Overview, FleetSeries]:
    """Overview and series over one window, alternating (a load that comes and goes weighs on both
    alike): their times in ms, and the last answer of each."""
    client.overview(hours)  # warm caches
    client.request("GET", "/metrics/series", params={"hours": hours})
    overview_ms, series_ms = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ov = client.overview(hours)
        overview_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        body = client.request("GET", "/metrics/series", params={"hours": hours}).json()
        series_ms.append((time.perf_counter() - t0) * 1000)
    return overview_ms, series_ms, ov, FleetSeries.model_validate(body)


def side_by_side(overview_ms: list[float], series_ms: list[float]) -> dict[str, float]:
    ov, se = statistics.median(overview_ms), statistics.median(series_ms)
    return {
        "overview_ms_p50": round(ov, 1),
        "series_ms_p50": round(se, 1),
        "series_over_overview": round(se / ov, 2),
    }


def measure(url: str, data_dir: Path, runs: int, repeats: int) -> dict[str, Any]:
    fill_s = fill(url, runs)
    result: dict[str, Any] = {"stored_runs": runs, "fill_s": round(fill_s, 1)}
    both: dict[str, dict[str, float]] = {}
    with (
        service(
            {"OPSLAB_DATA_DIR": str(data_dir), "OPSLAB_DATABASE_URL": url}, data_dir.with_suffix(".log")
        ) as base,
        OpslabClient(base, timeout=60) as client,
    ):
        for label, hours in WINDOWS:
            overview_ms, series_ms, ov, found = time_both(client, hours, repeats)
            result[f"overview_{label}_ms"] = {**_ms(overview_ms), "runs_in_window": ov.total_runs}
            result[f"series_{label}_ms"] = {
                **_ms(series_ms),
                "points": len(found.points),
                "runs_in_window": sum(p.runs for p in found.points),
                "over_overview_p50": round(statistics.median(series_ms) / statistics.median(overview_ms), 2),
            }
            both[label] = side_by_side(overview_ms, series_ms)
    since = datetime.now(UTC) - timedelta(days=30)
    result["naive_sql_all_ms_p50"] = round(
        statistics.median(naive_sql(url, since) * 1000 for _ in range(repeats)), 1
    )
    result["naive_series_sql_all_ms_p50"] = round(
        statistics.median(naive_series_sql(url, since) * 1000 for _ in range(repeats)), 1
    )
    result["series_vs_overview"] = both
    return result


def measure_runs_only(url: str, data_dir: Path, runs: int, repeats: int) -> dict[str, Any]:
    """The speed check's case: runs without steps, series against overview over the last week."""
    fill_s = fill_runs(url, runs, synth_bare_runs)
    with (
        service(
            {"OPSLAB_DATA_DIR": str(data_dir), "OPSLAB_DATABASE_URL": url}, data_dir.with_suffix(".log")
        ) as base,
        OpslabClient(base, timeout=60) as client,
    ):
        overview_ms, series_ms, ov, found = time_both(client, 24 * 7, repeats)
    return {
        "stored_runs": runs,
        "fill_s": round(fill_s, 1),
        "runs_in_window": ov.total_runs,
        "points": len(found.points),
        "168h": side_by_side(overview_ms, series_ms),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opslab-bench-overview-"))
    result: dict[str, Any] = {"target_ms": 200, "series_target_over_overview": SERIES_TARGET_RATIO}
    result["sqlite"] = measure(f"sqlite:///{work / 'ov.db'}", work / "sqlite", args.runs, args.repeats)
    result["sqlite"]["runs_only"] = measure_runs_only(
        f"sqlite:///{work / 'bare.db'}", work / "sqlite-bare", args.runs, args.repeats
    )
    with scratch_postgres() as pg:
        result["postgres"] = measure(pg, work / "pg", args.runs, args.repeats) if pg else None
    with scratch_postgres() as pg:
        if pg and result["postgres"] is not None:
            result["postgres"]["runs_only"] = measure_runs_only(pg, work / "pg-bare", args.runs, args.repeats)
    write_result("overview", result)


if __name__ == "__main__":
    main()
