"""Ingest throughput: POST /agent-runs and /agent-runs/batch on SQLite and PostgreSQL, beside a raw floor;
OTLP trace exports (gzip, protobuf and JSON) beside decoding the same payload with the protobuf library;
OTLP protobuf exports sent one after another to a fresh service (SQLite), beside decoding them and writing
one row per span with raw sqlite3 (``otlp_over_floor``, the acceptance check's figure).

The service runs as `opslab serve` (one uvicorn worker); load comes from a separate process (the
sequential OTLP exports from this one). Each database's floor is its own driver's raw `executemany` of the
same rows into the same schema (sqlite3; psycopg into a scratch database of the same PostgreSQL server),
in the same run on the same machine. Figures and their floors are measured in alternating
rounds and the ratio is the median of the rounds' ratios: on a shared machine the load changes between
one measurement and the next.
Targets: batch >= 2,000 runs/s and >= 0.3 of the floor; OTLP spans >= 0.2 of their floor.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench._common import ROOT, cpu_seconds, scratch_postgres, seed_run, service, write_result
from bench._otlp_payload import SPANS_PER_TRACE
from bench._otlp_payload import agent_exports as otlp_agent_exports
from bench._otlp_payload import floor_rows as floor_otlp_rows
from bench._otlp_payload import payloads as otlp_payloads
from bench._otlp_payload import varied_exports as otlp_varied_exports
from bench._otlp_schema_floor import schema_floor as otlp_schema_floor
from opslab.store import make_engine, upgrade
from opslab.store.engine import scratch_database


def floor_sqlite(runs: int, workdir: Path, round_no: int = 0) -> dict[str, Any]:
    """Raw sqlite3 executemany of the rows one seed run becomes (1 run + 4 steps + 3 tool calls + 1
    guardrail), into opslab's migrated tables."""
    db = workdir / f"floor-{round_no}.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    start, cpu_start = time.perf_counter(), time.process_time()
    with conn:
        for table, rows in _floor_rows(runs):
            conn.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    conn.close()
    return _floor_figures(runs, wall, cpu, "sqlite3 executemany")


def floor_postgres(runs: int, database_url: str) -> dict[str, Any]:
    """``floor_sqlite`` on PostgreSQL: psycopg's executemany (pipelined) of the same rows, one
    transaction, into opslab's tables, migrated first in ``database_url`` (an empty database)."""
    import psycopg

    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    plain = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as conn:
        start, cpu_start = time.perf_counter(), time.process_time()
        with conn.cursor() as cur:
            for table, rows in _floor_rows(runs):
                cur.executemany(f"INSERT INTO {table} VALUES ({','.join(['%s'] * len(rows[0]))})", rows)
        conn.commit()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return _floor_figures(runs, wall, cpu, "psycopg executemany")


def _floor_figures(runs: int, wall: float, cpu: float, how: str) -> dict[str, Any]:
    return {
        "runs": runs,
        "how": how,
        "wall_s": round(wall, 3),
        "runs_per_s": round(runs / wall, 1),
        "cpu_us_per_run": round(cpu / runs * 1e6, 1),
    }


def _floor_rows(runs: int) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Each table's rows for ``runs`` copies of the seed run, every column in the table's order (as
    opslab's migrations made it), values as the seed gives them (timestamps as ISO text)."""
    r = seed_run()
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
                None,
                None,
                None,
                None,
                None,
                None,
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
                    None,  # kind, model, tokens_prompt, tokens_completion, messages (migration 0015)
                    None,
                    None,
                    None,
                    None,
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
    tables = (
        ("agent_runs", run_rows),
        ("run_steps", step_rows),
        ("tool_calls", call_rows),
        ("guardrail_events", guard_rows),
    )
    return [(table, rows) for table, rows in tables if rows]


# Single-run posts need many connections to keep the server busy; 500-run batches need only two
# (one being parsed while the other is written), and more only make the threads fight over the GIL.
CONCURRENCY = {"single": 8, "batch": 2, "otlp-protobuf": 2, "otlp-json": 2}
TRACES_PER_EXPORT = 100  # 500 spans per export, as a Collector's batch processor sends them


def load(url: str, mode: str, runs: int, prefix: str, *, first_trace: int = 1) -> dict[str, Any]:
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
            "--first-trace",
            str(first_trace),
            *(["--batch-size", str(TRACES_PER_EXPORT)] if mode.startswith("otlp-") else []),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {mode} load failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def floor_otlp(traces: int) -> dict[str, Any]:
    """Decoding the same gzip'd protobuf exports with the protobuf library alone (no mapping, no storage)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    bodies = otlp_payloads(max(1, traces // TRACES_PER_EXPORT), TRACES_PER_EXPORT, "protobuf")
    start = time.perf_counter()
    spans = 0
    for body in bodies:
        req = ExportTraceServiceRequest()
        req.ParseFromString(gzip.decompress(body))
        spans += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    wall = time.perf_counter() - start
    return {"spans": spans, "wall_s": round(wall, 3), "spans_per_s": round(spans / wall, 1)}


def otlp_over_floor(
    rounds: int, requests: int = 20, traces: int = 200, spans: int = 10, *, varied: bool = False
) -> dict[str, Any]:
    """OTLP protobuf exports posted one after another to a fresh `opslab serve` (SQLite), against the
    floor of decoding them and writing a row per span (``floor_otlp_rows``), floor and service in
    alternating rounds; the ratio is the median of the rounds' ratios. Each round also measures the floor
    with the store's schema (``otlp_schema_floor``: the same exports as the rows kept for them, by a
    minimal writer): what the tables alone allow against the first floor. ``varied``: ``requests``
    exports as agents send them (``varied_exports``) instead, with no schema floor."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    bodies = otlp_varied_exports(requests) if varied else otlp_agent_exports(requests, traces, spans)
    headers = {"content-type": "application/x-protobuf"}
    measured = []
    for k in range(rounds):
        floor = floor_otlp_rows(bodies)
        schema = None if varied else otlp_schema_floor(bodies)
        with tempfile.TemporaryDirectory(prefix="opslab-bench-otlp-") as tmp:
            data = Path(tmp) / "data"
            pids: list[int] = []
            with (
                service({"OPSLAB_DATA_DIR": str(data)}, Path(tmp) / "serve.log", pids=pids) as url,
                httpx.Client(base_url=url, timeout=300) as client,
            ):
                cpu_before, start = cpu_seconds(pids[0]), time.perf_counter()
                answers = [client.post("/v1/traces", content=body, headers=headers) for body in bodies]
                wall = time.perf_counter() - start
                cpu = cpu_seconds(pids[0]) - cpu_before
        for answer in answers:  # every span stored: a refused one would flatter the figure
            answer.raise_for_status()
            if ExportTraceServiceResponse.FromString(answer.content).partial_success.rejected_spans:
                raise RuntimeError(f"spans refused: {answer.content!r}")
        stored = floor["spans"]
        measured.append(
            {
                "round": k,
                "spans": stored,
                "spans_per_s": round(stored / wall, 1),
                "floor_spans_per_s": floor["spans_per_s"],
                "ratio": round(stored / wall / floor["spans_per_s"], 3),
                "server_cpu_ms_per_request": round(cpu / requests * 1000, 1),
            }
        )
        if schema is not None:
            measured[-1]["schema_floor_spans_per_s"] = schema["spans_per_s"]
            measured[-1]["schema_floor_ratio"] = round(schema["spans_per_s"] / floor["spans_per_s"], 3)
    median = statistics.median(m["ratio"] for m in measured)
    pick = min(measured, key=lambda m: abs(m["ratio"] - median))
    shape = (
        "as agents send them (30-300 traces of 2-15 spans, times and latencies their own)"
        if varied
        else (f"of {traces} traces of {spans} spans")
    )
    return {
        "payload": f"{requests} protobuf exports (uncompressed) {shape}, posted one after another to a "
        "fresh service",
        "spans": measured[0]["spans"] if measured else 0,
        "spans_per_s": pick["spans_per_s"],
        "floor_spans_per_s": pick["floor_spans_per_s"],
        "over_floor": round(median, 3),
        **(
            {}
            if varied
            else {
                "schema_floor_spans_per_s": pick["schema_floor_spans_per_s"],
                "schema_floor_over_floor": statistics.median(m["schema_floor_ratio"] for m in measured),
            }
        ),
        "rounds": measured,
    }


def measure(
    db_url: str | None, data_dir: Path, single_runs: int, batch_runs: int, rounds: int, otlp_traces: int
) -> dict[str, Any]:
    """The single-run and batch figures, each batch round beside a floor round, then OTLP exports."""
    env = {"OPSLAB_DATA_DIR": str(data_dir)}
    if db_url:
        env["OPSLAB_DATABASE_URL"] = db_url
    batches, floors, ratios, cpu_ratios = [], [], [], []
    pids: list[int] = []
    with service(env, data_dir.with_suffix(".log"), pids=pids) as url:
        load(url, "batch", 500, "warm")  # warm-up: connection pools, caches
        single = load(url, "single", single_runs, "s")
        for k in range(rounds):
            # Each database beside its own floor: the same rows through its own driver.
            if db_url:
                with scratch_database(db_url, "opslab_bench_floor") as floor_url:
                    floor = floor_postgres(batch_runs, floor_url)
            else:
                floor = floor_sqlite(batch_runs, data_dir.parent, k)
            cpu_before = cpu_seconds(pids[0])
            batch = load(url, "batch", batch_runs, f"m{k}")
            batch["server_cpu_us_per_run"] = round((cpu_seconds(pids[0]) - cpu_before) / batch_runs * 1e6, 1)
            floors.append(floor)
            batches.append(batch)
            ratios.append(batch["runs_per_s"] / floor["runs_per_s"])
            cpu_ratios.append(floor["cpu_us_per_run"] / batch["server_cpu_us_per_run"])
        otlp = {
            encoding: load(url, f"otlp-{encoding}", otlp_traces, "o", first_trace=1 + i * 10 * otlp_traces)
            for i, encoding in enumerate(("protobuf", "json"))
        }
    median = statistics.median(ratios)
    pick = min(range(rounds), key=lambda k: abs(ratios[k] - median))
    return {
        "single": single,
        "batch": batches[pick],
        "floor": floors[pick],
        "batch_over_floor": round(median, 3),
        # The same ratio in CPU time (the floor's per run over the server's per run): what the machine's
        # load does not stretch; the load generator's own CPU is not counted.
        "batch_over_floor_cpu": round(statistics.median(cpu_ratios), 3),
        "rounds": [
            {
                "batch_runs_per_s": b["runs_per_s"],
                "floor_runs_per_s": f["runs_per_s"],
                "ratio": round(r, 3),
                "server_cpu_us_per_run": b["server_cpu_us_per_run"],
                "floor_cpu_us_per_run": f["cpu_us_per_run"],
                "cpu_ratio": round(c, 3),
            }
            for b, f, r, c in zip(batches, floors, ratios, cpu_ratios, strict=True)
        ],
        "otlp": otlp,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--single-runs", type=int, default=3000)
    ap.add_argument("--batch-runs", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--otlp-traces", type=int, default=4000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opslab-bench-ingest-"))
    sizes = (args.single_runs, args.batch_runs, args.rounds, args.otlp_traces)
    sqlite = measure(None, work / "sqlite", *sizes)
    with scratch_postgres() as pg_url:
        postgres = measure(pg_url, work / "pg", *sizes) if pg_url else None
    otlp_floor = floor_otlp(args.otlp_traces)
    otlp_rows = otlp_over_floor(args.rounds)
    otlp_varied = otlp_over_floor(args.rounds, requests=20, varied=True)
    for db in (sqlite, postgres):
        for figures in (db or {}).get("otlp", {}).values():
            figures["over_protobuf_decode"] = round(figures["spans_per_s"] / otlp_floor["spans_per_s"], 4)
    result: dict[str, Any] = {
        "payload": "seed run-001 (4 steps, 3 tool calls, 1 guardrail event), unique run ids",
        "otlp_payload": f"gzip exports of {TRACES_PER_EXPORT} traces, {SPANS_PER_TRACE} GenAI spans each",
        "server": "opslab serve, one uvicorn worker; load from a separate process",
        "connections": CONCURRENCY,
        "floor_sqlite_executemany": sqlite["floor"],
        "floor_postgres_executemany": postgres["floor"] if postgres else None,
        "floor_otlp_protobuf_decode": otlp_floor,
        "otlp_over_floor": otlp_rows,
        "otlp_varied_over_floor": otlp_varied,
        "sqlite": sqlite,
        "postgres": postgres,
        "targets": {"batch_runs_per_s": 2000, "batch_over_floor": 0.3, "otlp_over_floor": 0.2},
    }
    write_result("ingest", result)


if __name__ == "__main__":
    main()
