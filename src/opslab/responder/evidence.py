"""Evidence: the facts of an incident as citable items with stable ids.

    obs:<field>        a value of the latest observation (obs:error_rate, obs:pool.utilization,
                       obs:checks.dependency, obs:status_codes.502, obs:version, obs:flags.new_ranking)
    log:<n>            the n-th log line of the latest observation (warnings and errors)
    trend:<what>       a change over the kept observations or against the baseline (trend:memory)

A diagnosis (the rules' or an LLM's) must cite these ids; one citing an id not listed here is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from opslab.responder.detect import Baseline, slope_per_min
from opslab.responder.model import Category, Evidence, Observation

EvidenceKind = Literal["observation", "log", "trend"]

# Which categories a log line speaks for: generic markers of each failure, never a test's numbers.
LOG_MARKERS: dict[Category, re.Pattern[str]] = {
    "db_pool_exhaustion": re.compile(r"queuepool|pool limit|connection timed out|too many connections", re.I),
    "bad_deploy": re.compile(
        r"typeerror|traceback|attributeerror|keyerror|unhandled exception|release v", re.I
    ),
    "memory_leak": re.compile(r"memoryerror|out of memory|\boom\b", re.I),
    "dependency_outage": re.compile(
        r"dependency_error|dependency|connection refused|connecterror|bad gateway|upstream", re.I
    ),
}
_STATUS_CATEGORIES: dict[str, list[Category]] = {
    "500": ["bad_deploy"],
    "502": ["dependency_outage"],
    "503": ["db_pool_exhaustion", "memory_leak"],
    "504": ["dependency_outage"],
}
# Memory growth worth citing for a leak (a steady service drifts by a few MB at most).
_SIGNIFICANT_GROWTH_MB_PER_MIN = 10.0
_CHECK_CATEGORIES: dict[str, list[Category]] = {
    "database": ["db_pool_exhaustion"],
    "dependency": ["dependency_outage"],
    "memory": ["memory_leak"],
}


def log_categories(message: str) -> list[Category]:
    return [c for c, pattern in LOG_MARKERS.items() if pattern.search(message)]


def gather_evidence(obs: Observation, history: Sequence[Observation], baseline: Baseline) -> list[Evidence]:
    """Every citable fact of the latest observation, its logs and its memory trend."""
    items: list[Evidence] = []

    def add(
        eid: str,
        title: str,
        value: str,
        categories: Sequence[Category] = (),
        kind: EvidenceKind = "observation",
    ) -> None:
        items.append(
            Evidence(evidence_id=eid, kind=kind, title=title, value=value, categories=list(categories))
        )

    add("obs:health", "Health status", obs.health_status)
    for err in obs.errors[:3]:
        add(f"obs:probe_error.{len(items)}", "Probe error", err)
    base_err = f" (baseline {baseline.error_rate.median:.1f}%)" if baseline.error_rate else ""
    add("obs:error_rate", "Error rate", f"{obs.error_rate:.1f}%{base_err}")
    base_lat = f" (baseline {baseline.latency_p95_ms.median:.0f} ms)" if baseline.latency_p95_ms else ""
    add("obs:latency_p95_ms", "Latency p95", f"{obs.latency_p95_ms:.0f} ms{base_lat}", ["latency_regression"])
    add("obs:avg_response_time_ms", "Average response time", f"{obs.avg_response_time_ms:.0f} ms")
    base_rate = f" (baseline {baseline.request_rate.median:.1f}/s)" if baseline.request_rate else ""
    add("obs:request_rate", "Request rate", f"{obs.request_rate:.1f}/s{base_rate}")
    for code, count in sorted(obs.status_codes.items()):
        if code.startswith("5") and count > 0:
            add(
                f"obs:status_codes.{code}",
                f"HTTP {code} responses",
                str(count),
                _STATUS_CATEGORIES.get(code, []),
            )
    if obs.pool is not None:
        pool_cats: list[Category] = ["db_pool_exhaustion"] if obs.pool.pool_health != "healthy" else []
        add("obs:pool.health", "Pool health", obs.pool.pool_health, pool_cats)
        add(
            "obs:pool.utilization",
            "Pool utilization",
            f"{obs.pool.utilization:.0%} ({obs.pool.checked_out} of {obs.pool.size} checked out)",
            pool_cats,
        )
        if obs.pool.wait_timeouts:
            add(
                "obs:pool.wait_timeouts",
                "Pool wait timeouts",
                str(obs.pool.wait_timeouts),
                ["db_pool_exhaustion"],
            )
    for name, c in sorted(obs.checks.items()):
        cats = _CHECK_CATEGORIES.get(name, []) if not c.ok else []
        add(f"obs:checks.{name}", f"Health check {name}", f"{'ok' if c.ok else 'FAILING'}: {c.detail}", cats)
    limit = f" of {obs.memory_limit_mb:.0f} MB" if obs.memory_limit_mb else ""
    add("obs:memory", "Memory RSS", f"{obs.memory_rss_mb:.0f} MB{limit}")
    if obs.version is not None:
        changed = baseline.version is not None and obs.version != baseline.version
        value = f"{obs.version} (baseline {baseline.version})" if changed else obs.version
        add("obs:version", "Deployed version", value, ["bad_deploy"] if changed else [])
    for name, on in sorted(obs.flags.items()):
        if on:
            was = baseline.flags.get(name)
            add(
                f"obs:flags.{name}",
                f"Feature flag {name}",
                "on" + (" (off in baseline)" if was is False else ""),
                ["latency_regression"],
            )
    for n, line in enumerate(obs.logs):
        if line.level.upper() == "INFO":
            continue
        add(f"log:{n}", f"{line.level} log", line.message[:300], log_categories(line.message), kind="log")
    points = list(history)
    if not points or points[-1].timestamp != obs.timestamp:
        points.append(obs)
    growth = slope_per_min(points)
    if growth is not None:
        trend_cats: list[Category] = ["memory_leak"] if growth >= _SIGNIFICANT_GROWTH_MB_PER_MIN else []
        add(
            "trend:memory",
            "Memory trend",
            f"{growth:+.0f} MB/min over {len(points)} polls",
            trend_cats,
            kind="trend",
        )
    return _dedupe(items)


def _dedupe(items: list[Evidence]) -> list[Evidence]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.evidence_id not in seen:
            seen.add(item.evidence_id)
            out.append(item)
    return out


def symptoms_text(evidence: Sequence[Evidence], reasons: Sequence[str]) -> str:
    """A retrieval query: the detector's reasons, the failing facts and the distinct error messages."""
    parts = list(reasons)
    for e in evidence:
        if e.kind == "log" or e.categories:
            parts.append(f"{e.title} {e.value}")
    return " ".join(dict.fromkeys(parts))[:2000] or "service unhealthy"
