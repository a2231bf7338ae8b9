"""The dashboard's runs pages over 100,000 stored runs, on SQLite and PostgreSQL. Target: every page
renders in < 300 ms (p50, over HTTP against `opslab serve`).

Each dashboard page is timed beside its peer in the same run: the JSON API's ``GET /agent-runs`` with the
same filter (the same SQL, no HTML). The filters cover what a user does: nothing, a status, an agent and
version, an experiment (a JSON attribute), free text over errors (a match and no match at all, the worst
case: every run is looked at), the next page, and one run's page with its timeline.
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

import httpx

from bench._common import fill_runs, scratch_postgres, service, write_result
from opslab.telemetry import AgentRunIn

AGENTS = [f"agent-{i}" for i in range(12)]
ERRORS = ["TimeoutError: upstream timed out", "RateLimited: HTTP 429", "SchemaError: missing field 'id'"]


def synth_runs(n: int, *, offset: int) -> list[AgentRunIn]:
    rng = random.Random(offset)
    now = datetime.now(UTC)
    runs = []
    for i in range(n):
        start = now - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
        failed = rng.random() < 0.15
        calls = [
            {
                "call_id": f"c{s}",
                "step_id": f"s{s}",
                "tool_name": rng.choice(["search", "crm", "payments"]),
                "status": "failure" if failed and s == 1 else "success",
                "error_message": rng.choice(ERRORS) if failed and s == 1 else None,
            }
            for s in range(2)
        ]
        runs.append(
            AgentRunIn.model_validate(
                {
                    "run_id": f"ui-{offset + i}",
                    "agent_name": rng.choice(AGENTS),
                    "agent_version": f"1.{rng.randint(0, 5)}",
                    "environment": rng.choice(["prod", "staging"]),
                    "model": rng.choice(["m-small", "m-large"]),
                    "started_at": start,
                    "status": "failure" if failed else "success",
                    "error_type": "ToolError" if failed else None,
                    "error_message": "a tool call failed" if failed else None,
                    "steps": [
                        {
                            "step_id": f"s{s}",
                            "name": f"step {s}",
                            "status": "success",
                            "latency_ms": 100.0 + s,
                        }
                        for s in range(4)
                    ],
                    "tool_calls": calls,
                    "cost": {"total_cost_usd": rng.random() / 100},
                    "attributes": {"lab.experiment": f"exp-{rng.randint(0, 49)}"}
                    if rng.random() < 0.2
                    else {},
                }
            )
        )
    return runs


def fill(url: str, runs: int) -> float:
    return fill_runs(url, runs, synth_runs)


CASES: dict[str, dict[str, str]] = {
    "first_page": {},
    "status": {"status": "failure"},
    "agent_version": {"agent": "agent-3", "version": "1.2"},
    "experiment": {"experiment": "exp-7"},
    "error_text": {"q": "429"},
    "error_text_no_match": {"q": "no run says this"},
}
API_NAMES = {"agent": "agent_name", "version": "agent_version"}


def _time(client: httpx.Client, path: str, params: dict[str, str], repeats: int) -> tuple[float, float, int]:
    client.get(path, params=params).raise_for_status()  # warm
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return round(statistics.median(times), 1), round(max(times), 1), len(r.content)


def measure(url: str, data_dir: Path, runs: int, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"stored_runs": runs, "fill_s": round(fill(url, runs), 1)}
    with (
        service(
            {"OPSLAB_DATA_DIR": str(data_dir), "OPSLAB_DATABASE_URL": url}, data_dir.with_suffix(".log")
        ) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        for name, params in CASES.items():
            page = _time(client, "/ui/runs", params, repeats)
            api = _time(client, "/agent-runs", {API_NAMES.get(k, k): v for k, v in params.items()}, repeats)
            out[name] = {
                "page_p50_ms": page[0],
                "page_max_ms": page[1],
                "api_p50_ms": api[0],
                "api_max_ms": api[1],
            }
        first = client.get("/agent-runs", params={"status": "failure"}).json()
        nxt = {"status": "failure", "cursor": first["next_cursor"]}
        page = _time(client, "/ui/runs", nxt, repeats)
        api = _time(client, "/agent-runs", nxt, repeats)
        out["next_page"] = {
            "page_p50_ms": page[0],
            "page_max_ms": page[1],
            "api_p50_ms": api[0],
            "api_max_ms": api[1],
        }
        run_id = first["items"][0]["run_id"]
        page = _time(client, f"/ui/runs/{run_id}", {}, repeats)
        api = _time(client, f"/agent-runs/{run_id}/timeline", {}, repeats)
        out["run_page"] = {
            "page_p50_ms": page[0],
            "page_max_ms": page[1],
            "api_p50_ms": api[0],
            "api_max_ms": api[1],
        }
    out["worst_page_p50_ms"] = max(v["page_p50_ms"] for v in out.values() if isinstance(v, dict))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opslab-bench-ui-"))
    result: dict[str, Any] = {
        "target_ms": 300,
        "peer": "GET /agent-runs with the same filter (JSON, same SQL)",
    }
    result["sqlite"] = measure(f"sqlite:///{work / 'ui.db'}", work / "sqlite", args.runs, args.repeats)
    with scratch_postgres() as pg:
        result["postgres"] = measure(pg, work / "pg", args.runs, args.repeats) if pg else None
    write_result("ui", result)


if __name__ == "__main__":
    main()
