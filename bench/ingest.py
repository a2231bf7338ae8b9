"""Ingest throughput: POST /agent-runs and /agent-runs/batch on SQLite and PostgreSQL, beside a raw floor.

The service runs as `opslab serve` (one uvicorn worker); load comes from a separate process. The floor
is raw sqlite3 `executemany` of the same rows into the same schema, in the same run on the same machine.
Targets: batch >= 2,000 runs/s and >= 0.3 of the floor.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import ROOT, scratch_postgres, seed_run, service, write_result
from opslab.store import make_engine, upgrade


def floor_sqlite(runs: int, workdir: Path) -> dict[str, Any]:
    """Raw executemany of the rows one seed run becomes (1 run + 4 steps + 3 tool calls + 1 guardrail)."""
    db = workdir / "floor.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    r = seed_run()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    start = time.perf_counter()
    run_rows, step_rows, call_rows, guard_rows = [], [], [], []
    for i in range(runs):
        rid = f"f-{i}"
        run_rows.append(
            (
                rid,
                r["agent_name"],
                r["agent_version"],
                r["model"],
                r["environment"],
                r["started_at"],
                r["ended_at"],
                r["status"],
                r["error_type"],
                r["error_message"],
                r["trace_id"],
                json.dumps(r["correlation_ids"]),
                1250,
                380,
                0.0245,
                "{}",
                "native",
                "x" * 64,
                r["started_at"],
            )
        )
        for seq, s in enumerate(r["steps"]):
            step_rows.append(
                (
                    rid,
                    seq,
                    s["step_id"],
                    s["name"],
                    s["status"],
                    s["started_at"],
                    s["ended_at"],
                    s["input_summary"],
                    s["output_summary"],
                    s["retries"],
                    s["latency_ms"],
                    None,
                    r["started_at"],
                )
            )
        for seq, c in enumerate(r["tool_calls"]):
            call_rows.append(
                (
                    rid,
                    seq,
                    c["call_id"],
                    c["step_id"],
                    c["tool_name"],
                    c["status"],
                    json.dumps(c["args_json"]),
                    c["args_hash"],
                    c["result_summary"],
                    c["error_class"],
                    c["error_message"],
                    c["status_code"],
                    c["retries"],
                    c["latency_ms"],
                    None,
                    None,
                    r["started_at"],
                )
            )
        for seq, g in enumerate(r["guardrail_events"]):
            guard_rows.append(
                (
                    rid,
                    seq,
                    g["event_id"],
                    g["type"],
                    g["message"],
                    g["step_id"],
                    g["call_id"],
                    g["created_at"],
                )
            )
    with conn:
        conn.executemany("INSERT INTO agent_runs VALUES (" + ",".join("?" * 19) + ")", run_rows)
        conn.executemany("INSERT INTO run_steps VALUES (" + ",".join("?" * 13) + ")", step_rows)
        conn.executemany("INSERT INTO tool_calls VALUES (" + ",".join("?" * 17) + ")", call_rows)
        conn.executemany("INSERT INTO guardrail_events VALUES (" + ",".join("?" * 8) + ")", guard_rows)
    wall = time.perf_counter() - start
    conn.close()
    return {"runs": runs, "wall_s": round(wall, 3), "runs_per_s": round(runs / wall, 1)}


# Single-run posts need many connections to keep the server busy; 500-run batches need only two
# (one being parsed while the other is written), and more only make the threads fight over the GIL.
CONCURRENCY = {"single": 8, "batch": 2}


def load(url: str, mode: str, runs: int, prefix: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench._ingest_load",
            "--url",
            url,
            "--mode",
            mode,
            "--runs",
            str(runs),
            "--prefix",
            prefix,
            "--concurrency",
            str(CONCURRENCY[mode]),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(db_url: str | None, data_dir: Path, single_runs: int, batch_runs: int) -> dict[str, Any]:
    env = {"OPSLAB_DATA_DIR": str(data_dir)}
    if db_url:
        env["OPSLAB_DATABASE_URL"] = db_url
    with service(env, data_dir.with_suffix(".log")) as url:
        load(url, "batch", 500, "warm")  # warm-up: connection pools, caches
        single = load(url, "single", single_runs, "s")
        batch = load(url, "batch", batch_runs, "m")
    return {"single": single, "batch": batch}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--single-runs", type=int, default=3000)
    ap.add_argument("--batch-runs", type=int, default=20000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opslab-bench-ingest-"))
    floor = floor_sqlite(args.batch_runs, work)
    sqlite = measure(None, work / "sqlite", args.single_runs, args.batch_runs)
    with scratch_postgres() as pg_url:
        postgres = measure(pg_url, work / "pg", args.single_runs, args.batch_runs) if pg_url else None
    result: dict[str, Any] = {
        "payload": "seed run-001 (4 steps, 3 tool calls, 1 guardrail event), unique run ids",
        "server": "opslab serve, one uvicorn worker; load from a separate process",
        "connections": CONCURRENCY,
        "floor_sqlite_executemany": floor,
        "sqlite": sqlite,
        "postgres": postgres,
        "targets": {"batch_runs_per_s": 2000, "batch_over_floor": 0.3},
    }
    result["sqlite"]["batch_over_floor"] = round(sqlite["batch"]["runs_per_s"] / floor["runs_per_s"], 3)
    if postgres:
        result["postgres"]["batch_over_floor"] = round(
            postgres["batch"]["runs_per_s"] / floor["runs_per_s"], 3
        )
    write_result("ingest", result)


if __name__ == "__main__":
    main()
