"""Evidence: the facts of an incident as citable items with stable ids.

    obs:<field>        a value of the latest observation (obs:error_rate, obs:pool.utilization,
                       obs:checks.dependency, obs:status_codes.502, obs:version, obs:flags.new_ranking)
    log:<n>            the n-th log line of the latest observation (warnings and errors)
    trend:<what>       a change over the kept observations or against the baseline (trend:memory)

A diagnosis (the rules' or an LLM's) must cite these ids; one citing an id not listed here is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from opslab.responder.detect import Baseline, slope_per_min
from opslab.responder.model import Category, Evidence
from opslab.responder.observation import Observation

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
    "database_lock": re.compile(r"database is locked|lock wait timeout|deadlock detected", re.I),
    "disk_full": re.compile(r"no space left|errno 28|disk full|insufficient storage", re.I),
}
_STATUS_CATEGORIES: dict[str, list[Category]] = {
    "500": ["bad_deploy"],
    "502": ["dependency_outage"],
    "503": ["db_pool_exhaustion", "memory_leak", "database_lock"],
    "504": ["dependency_outage"],
    "507": ["disk_full"],
}
# Memory growth worth citing for a leak (a steady service drifts by a few MB at most).
_SIGNIFICANT_GROWTH_MB_PER_MIN = 10.0
_CHECK_CATEGORIES: dict[str, list[Category]] = {
    "database": ["db_pool_exhaustion"],
    "dependency": ["dependency_outage"],
    "memory": ["memory_leak"],
    "disk": ["disk_full"],
}


def log_categories(message: str) -> list[Category]:
    return [c for c, pattern in LOG_MARKERS.items() if pattern.search(message)]


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "missing" if value is None else f"{value:.{digits}f}{unit}"


def gather_evidence(obs: Observation, history: Sequence[Observation], baseline: Baseline) -> list[Evidence]:
    """Every citable fact of the latest observation, its logs, its trends and its host."""
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
    down: list[Category] = [] if obs.answered else ["target_down"]
    add("obs:reachability", "Target reachability", f"{obs.reachability} ({_fmt(obs.probe_ms, ' ms')})", down)
    for err in obs.errors[:3]:
        add(f"obs:probe_error.{len(items)}", "Probe error", err)
    _host(obs, add)
    if not obs.answered:
        return _dedupe(items)
    base_err = f" (baseline {baseline.error_rate.median:.1f}%)" if baseline.error_rate else ""
    add("obs:error_rate", "Error rate", f"{_fmt(obs.error_rate, '%', 1)}{base_err}")
    base_lat = f" (baseline {baseline.latency_p95_ms.median:.0f} ms)" if baseline.latency_p95_ms else ""
    add(
        "obs:latency_p95_ms",
        "Latency p95",
        f"{_fmt(obs.latency_p95_ms, ' ms')}{base_lat}",
        ["latency_regression", "network_latency"],
    )
    add("obs:avg_response_time_ms", "Average response time", _fmt(obs.avg_response_time_ms, " ms"))
    base_rate = f" (baseline {baseline.request_rate.median:.1f}/s)" if baseline.request_rate else ""
    add("obs:request_rate", "Request rate", f"{_fmt(obs.request_rate, '/s', 1)}{base_rate}")
    if obs.dependency_latency_ms is not None:
        dep_base = baseline.dependency_latency_ms
        slow = dep_base is not None and obs.dependency_latency_ms > max(
            3 * dep_base.median, dep_base.median + 100
        )
        add(
            "obs:dependency_latency_ms",
            "Dependency round trip",
            f"{obs.dependency_latency_ms:.0f} ms"
            + (f" (baseline {dep_base.median:.0f} ms)" if dep_base else ""),
            ["network_latency"] if slow else [],
        )
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
        if name == "database" and not c.ok and LOG_MARKERS["database_lock"].search(c.detail):
            cats = ["database_lock"]
        add(f"obs:checks.{name}", f"Health check {name}", f"{'ok' if c.ok else 'FAILING'}: {c.detail}", cats)
    limit = f" of {obs.memory_limit_mb:.0f} MB" if obs.memory_limit_mb else ""
    add("obs:memory", "Memory RSS", f"{_fmt(obs.memory_rss_mb, ' MB')}{limit}")
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


def _host(obs: Observation, add: Callable[..., None]) -> None:
    """The host (CPU, load, memory) and the target's process, from the target or the action server."""
    live = obs.liveness
    if live is not None:
        state: list[Category] = ["target_down"] if live.alive is False or live.state == "stopped" else []
        add("obs:liveness.target", "Target process", f"{live.state or '?'} (pid {live.pid or '?'})", state)
    cpu = (
        obs.host_cpu_busy_pct
        if obs.host_cpu_busy_pct is not None
        else live.host_cpu_busy_pct
        if live
        else None
    )
    load = obs.host_load1 if obs.host_load1 is not None else live.host_load1 if live else None
    cpus = obs.host_cpus or (live.host_cpus if live else None)
    if cpu is not None or load is not None:
        busy: list[Category] = ["host_overload"] if obs.host_busy() else []
        add(
            "obs:host.cpu",
            "Host CPU",
            f"{_fmt(cpu, '%')} busy, load {_fmt(load, '', 1)} on {cpus or '?'} cores",
            busy,
        )
    proc_cpu = obs.process_cpu_pct if obs.process_cpu_pct is not None else live.cpu_pct if live else None
    if proc_cpu is not None:
        add("obs:process.cpu", "Target process CPU", f"{proc_cpu:.0f}%")
    avail = (
        obs.host_mem_available_mb
        if obs.host_mem_available_mb is not None
        else (live.host_mem_available_mb if live else None)
    )
    if avail is not None:
        total = f" of {obs.host_mem_total_mb:.0f} MB" if obs.host_mem_total_mb else ""
        add("obs:host.memory", "Host memory available", f"{avail:.0f} MB{total}")


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
