"""Diagnosis: rules over the evidence, retrieval over the knowledge base, optionally an LLM.

1. Each category's rule adds weight for the facts that speak for it and keeps the ids it used, so
   the diagnosis cites exactly the evidence behind it.
2. The symptoms (detector reasons, failing facts, error lines) are a BM25 query over runbooks and past
   incidents; a category whose documents rank high gains confidence, and past incidents of that
   category are named as similar.
3. ``confidence = 0.75 x rule score + 0.25 x retrieval support`` (+ a little per similar incident).
4. With a chat model, ``responder.llm`` may replace the rules' diagnosis only if it cites evidence ids
   and a runbook that exist; otherwise the rules' diagnosis stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from opslab.knowledge import Hit, KnowledgeBase
from opslab.responder.config import ResponderConfig
from opslab.responder.detect import Baseline, memory_floor_mb
from opslab.responder.model import CATEGORIES, Category, Diagnosis, Evidence
from opslab.responder.observation import Observation

MIN_RULE_SCORE = 0.3
_RULE_WEIGHT, _RETRIEVAL_WEIGHT, _SIMILAR_BONUS = 0.75, 0.25, 0.05
_SUMMARIES: dict[Category, str] = {
    "db_pool_exhaustion": "Database connection pool exhaustion",
    "bad_deploy": "Bad deploy: the new version fails requests",
    "latency_regression": "Latency regression from a feature flag",
    "memory_leak": "Memory leak",
    "dependency_outage": "Downstream dependency outage",
    "target_down": "The target process is gone or hung",
    "database_lock": "The database is locked by something outside the service",
    "disk_full": "The target's disk is full",
    "host_memory_pressure": "Host memory pressure from outside the target",
    "network_latency": "Network latency on the path to the dependency",
    "host_overload": "Slow because the host is busy",
    "unknown": "Unclassified degradation",
}


@dataclass
class RuleScore:
    category: Category
    score: float = 0.0
    evidence_ids: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, weight: float, reason: str, *ids: str) -> None:
        self.score = min(1.0, self.score + weight)
        self.reasons.append(reason)
        self.evidence_ids.extend(i for i in ids if i not in self.evidence_ids)


def score_rules(
    obs: Observation, evidence: Sequence[Evidence], baseline: Baseline, config: ResponderConfig
) -> dict[Category, RuleScore]:
    ids = {e.evidence_id for e in evidence}
    logs = {
        c: [e.evidence_id for e in evidence if e.kind == "log" and c in e.categories][:3] for c in CATEGORIES
    }
    scores: dict[Category, RuleScore] = {c: RuleScore(c) for c in CATEGORIES if c != "unknown"}
    if not obs.answered:
        _silent(obs, scores)
    else:
        _answering(obs, evidence, baseline, config, logs, scores)
    for rule in scores.values():  # cite only what exists (an absent pool has no obs:pool.* items)
        rule.evidence_ids = [i for i in rule.evidence_ids if i in ids]
    return scores


def _silent(obs: Observation, scores: dict[Category, RuleScore]) -> None:
    """A target that did not answer: gone (refused, or its process exited), hung (stopped, or silent on
    an idle host), or too slow on a busy one."""
    live = obs.liveness
    gone = obs.reachability == "refused" or (live is not None and live.alive is False)
    stopped = live is not None and live.state == "stopped"
    s = scores["target_down"]
    if gone:
        s.add(0.6, "the target refuses connections: nothing listens", "obs:reachability")
        if live is not None and live.alive is False:
            s.add(0.3, f"its process is {live.state or 'gone'}", "obs:liveness.target")
    elif stopped:
        s.add(0.6, "the target accepts and never answers", "obs:reachability")
        s.add(0.3, "its process is stopped", "obs:liveness.target")
    elif obs.host_busy():
        scores["host_overload"].add(
            0.5, "no answer in time while every core is busy", "obs:reachability", "obs:host.cpu"
        )
    else:
        s.add(0.4, "the target accepts and never answers, on an idle host (hung)", "obs:reachability")
        if live is not None and live.alive:
            s.add(0.1, f"its process is {live.state}", "obs:liveness.target")


def _answering(
    obs: Observation,
    evidence: Sequence[Evidence],
    baseline: Baseline,
    config: ResponderConfig,
    logs: dict[Category, list[str]],
    scores: dict[Category, RuleScore],
) -> None:
    pool = obs.pool
    failing = {name for name, c in obs.checks.items() if not c.ok}
    codes = {code for code, n in obs.status_codes.items() if n > 0}
    pool_ok = pool is None or pool.pool_health == "healthy"
    err = obs.error_rate or 0.0
    locked = bool(logs["database_lock"]) or any(
        e.evidence_id == "obs:checks.database" and "database_lock" in e.categories for e in evidence
    )

    s = scores["database_lock"]
    if logs["database_lock"]:
        s.add(0.5, "queries fail on a lock held outside the service", *logs["database_lock"])
    if locked and "database" in failing:
        s.add(0.3, "the database check fails on the lock", "obs:checks.database")
    if s.score > 0 and "503" in codes:
        s.add(0.1, "503 responses", "obs:status_codes.503")

    s = scores["db_pool_exhaustion"]
    if pool is not None and pool.pool_health == "critical":
        s.add(0.5, "pool critical", "obs:pool.health", "obs:pool.utilization")
    elif pool is not None and pool.pool_health == "degraded":
        s.add(0.2, "pool degraded", "obs:pool.health", "obs:pool.utilization")
    if pool is not None and pool.wait_timeouts > 0:
        s.add(0.1, "requests time out waiting for a connection", "obs:pool.wait_timeouts")
    if logs["db_pool_exhaustion"]:
        s.add(0.3, "pool limit errors in the logs", *logs["db_pool_exhaustion"])
    if "database" in failing and not locked:
        s.add(0.1, "database check failing", "obs:checks.database")
    if "503" in codes and s.score > 0:
        s.add(0.1, "503 responses", "obs:status_codes.503")
    if locked:  # connections held by queries waiting on a lock: the pool is a victim, not the cause
        s.score = max(0.0, s.score - 0.5)

    s = scores["bad_deploy"]
    changed = baseline.version is not None and obs.version is not None and obs.version != baseline.version
    if changed:
        s.add(0.4, f"version changed {baseline.version} -> {obs.version}", "obs:version")
    if logs["bad_deploy"]:
        s.add(0.3, "exceptions from the code in the logs", *logs["bad_deploy"])
    if "500" in codes:
        s.add(0.2, "500 responses", "obs:status_codes.500")
    if s.score > 0 and pool_ok and "dependency" not in failing and err > 0:
        s.add(0.1, "errors while pool and dependency are healthy", "obs:error_rate")

    s = scores["latency_regression"]
    slow = _slow(obs, baseline, config)
    flags_on = [n for n, on in obs.flags.items() if on]
    if slow and flags_on:
        s.add(0.4, "p95 latency far above the baseline", "obs:latency_p95_ms")
        if err < config.error_rate_threshold:
            s.add(0.2, "slow but not failing", "obs:error_rate")
        for name in flags_on:
            s.add(0.2, f"flag {name} on", f"obs:flags.{name}")
            if baseline.flags.get(name) is False:
                s.add(0.2, f"flag {name} switched on since the baseline", f"obs:flags.{name}")

    s = scores["network_latency"]
    dep = next((e for e in evidence if e.evidence_id == "obs:dependency_latency_ms"), None)
    if slow and dep is not None and "network_latency" in dep.categories:
        s.add(0.5, "every call to the dependency takes far longer than it did", "obs:dependency_latency_ms")
        s.add(0.2, "p95 latency up by as much", "obs:latency_p95_ms")
        if not flags_on:
            s.add(0.1, "no slower code path switched on", "obs:latency_p95_ms")

    s = scores["host_overload"]
    if slow and obs.host_busy() and s.score == 0:
        s.add(0.3, "slow while every core is busy", "obs:latency_p95_ms", "obs:host.cpu")

    s = scores["memory_leak"]
    rss = obs.memory_rss_mb
    if rss is not None and obs.memory_limit_mb and rss >= config.memory_ratio * obs.memory_limit_mb:
        s.add(0.4, "memory near its limit", "obs:memory")
    if logs["memory_leak"]:
        s.add(0.3, "MemoryError in the logs", *logs["memory_leak"])
    trend = next((e for e in evidence if e.evidence_id == "trend:memory"), None)
    if trend is not None and "memory_leak" in trend.categories:
        # Steady growth with nothing else wrong is the leak itself, caught before it hits the limit.
        s.add(0.35, "memory keeps growing", "trend:memory")
    if "memory" in failing:
        s.add(0.1, "memory check failing", "obs:checks.memory")

    s = scores["host_memory_pressure"]
    floor, avail = memory_floor_mb(obs, config), obs.host_mem_available_mb
    if floor is not None and avail is not None and avail < floor:
        s.add(0.5, f"host memory available {avail:.0f} MB under {floor:.0f} MB", "obs:host.memory")
        if scores["memory_leak"].score == 0:
            s.add(0.2, "the target's own memory is steady: another process takes it", "obs:memory")

    s = scores["disk_full"]
    if "disk" in failing:
        s.add(0.5, "the disk check cannot write", "obs:checks.disk")
    if logs["disk_full"]:
        s.add(0.3, "writes fail with no space left", *logs["disk_full"])
    if "507" in codes:
        s.add(0.1, "507 responses", "obs:status_codes.507")

    s = scores["dependency_outage"]
    if "dependency" in failing:
        s.add(0.4, "dependency check failing", "obs:checks.dependency")
    if logs["dependency_outage"]:
        s.add(0.3, "dependency errors in the logs", *logs["dependency_outage"])
    if "502" in codes:
        s.add(0.2, "502 responses", "obs:status_codes.502")
    if s.score > 0 and pool_ok:
        s.add(0.1, "database pool healthy", "obs:pool.health")


def _slow(obs: Observation, baseline: Baseline, config: ResponderConfig) -> bool:
    lat, p95 = baseline.latency_p95_ms, obs.latency_p95_ms
    if p95 is None:
        return False
    bound = (
        max(config.latency_factor * lat.median, lat.median + config.latency_margin_ms)
        if lat is not None and baseline.samples >= config.min_baseline
        else config.latency_absolute_ms
    )
    return p95 > bound


def retrieval_support(hits: Sequence[Hit], category: str) -> float:
    ranks = [h.rank for h in hits if category in h.document.categories]
    return 1.0 / min(ranks) if ranks else 0.0


class Diagnoser:
    def __init__(self, knowledge: KnowledgeBase, config: ResponderConfig) -> None:
        self.knowledge = knowledge
        self.config = config

    def diagnose(
        self, obs: Observation, evidence: Sequence[Evidence], baseline: Baseline, query: str
    ) -> tuple[Diagnosis, list[Hit]]:
        """The rules' diagnosis and the retrieval hits it used (the LLM pass gets both)."""
        rules = score_rules(obs, evidence, baseline, self.config)
        hits = self.knowledge.search(query, k=8)
        confidence: dict[Category, float] = {}
        for c, rule in rules.items():
            similar = [h for h in hits if h.document.kind == "incident" and c in h.document.categories]
            value = _RULE_WEIGHT * rule.score + _RETRIEVAL_WEIGHT * retrieval_support(hits, c)
            confidence[c] = min(0.99, value + _SIMILAR_BONUS * len(similar)) if rule.score > 0 else 0.0
        best = max(rules.values(), key=lambda r: (r.score, confidence[r.category]))
        if best.score < MIN_RULE_SCORE:
            cited = [
                e.evidence_id
                for e in evidence
                if e.evidence_id in ("obs:health", "obs:error_rate", "obs:reachability")
            ]
            return (
                Diagnosis(
                    category="unknown",
                    summary=_SUMMARIES["unknown"],
                    confidence=round(best.score * _RULE_WEIGHT, 3),
                    evidence_ids=cited,
                    notes=[f"no category's rules reached {MIN_RULE_SCORE}"],
                ),
                hits,
            )
        c = best.category
        runbook = self.knowledge.by_category(c)
        similar_ids = [
            h.document.id for h in hits if h.document.kind == "incident" and c in h.document.categories
        ]
        diagnosis = Diagnosis(
            category=c,
            summary=f"{_SUMMARIES[c]}: {', '.join(best.reasons)}",
            confidence=round(confidence[c], 3),
            evidence_ids=best.evidence_ids,
            runbook_id=runbook.id if runbook else None,
            similar_incidents=similar_ids,
            notes=[
                "rule scores: "
                + ", ".join(f"{r.category}={r.score:.2f}" for r in rules.values() if r.score > 0)
            ],
        )
        return diagnosis, hits
