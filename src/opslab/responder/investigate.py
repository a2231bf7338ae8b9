"""Investigation: the seed's step 5, from the observations alone. Was there more traffic? Are requests
slow? Is the dependency healthy? Is memory climbing? Did the version or a flag change since the
baseline? The answers become extra evidence (``trend:*``) and the root-cause text of the incident.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from opslab.responder.detect import Baseline, slope_per_min
from opslab.responder.model import Diagnosis, Evidence
from opslab.responder.observation import Observation

SPIKE_FACTOR = 2.0
_ROOT_CAUSES = {
    "db_pool_exhaustion": "connections are checked out and not returned (a leak), so the pool is drained",
    "bad_deploy": "the newly deployed version fails requests the previous one served",
    "latency_regression": "a feature flag switched on a slower code path",
    "memory_leak": "the process retains memory on every request until it hits its limit",
    "dependency_outage": "a downstream dependency is down, so requests needing it fail",
    "target_down": "the target's process is gone or hung: nothing answers its users",
    "database_lock": "something outside the service holds a lock on its database, so queries wait and fail",
    "disk_full": "the target's volume is full, so its writes fail",
    "host_memory_pressure": "another process on the host takes the memory the target needs",
    "network_latency": "the network path to the dependency got slow; the service itself did not change",
    "host_overload": "the host's CPUs are saturated by other work; the service is starved, not broken",
}


class Investigation(BaseModel):
    findings: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    root_cause: str = ""
    traffic_spike: bool = False


def investigate(
    obs: Observation, history: Sequence[Observation], baseline: Baseline, diagnosis: Diagnosis
) -> Investigation:
    findings: list[str] = []
    evidence: list[Evidence] = []

    def trend(eid: str, title: str, value: str) -> None:
        findings.append(f"{title}: {value}")
        evidence.append(Evidence(evidence_id=eid, kind="trend", title=title, value=value))

    spike = False
    if (
        obs.request_rate is not None
        and baseline.request_rate is not None
        and baseline.request_rate.median > 0
    ):
        ratio = obs.request_rate / baseline.request_rate.median
        spike = ratio >= SPIKE_FACTOR
        trend("trend:traffic", "Traffic vs baseline", f"x{ratio:.1f} ({'spike' if spike else 'normal'})")
    if (
        obs.latency_p95_ms is not None
        and baseline.latency_p95_ms is not None
        and baseline.latency_p95_ms.median > 0
    ):
        ratio = obs.latency_p95_ms / baseline.latency_p95_ms.median
        trend("trend:latency", "p95 latency vs baseline", f"x{ratio:.1f}")
    dep = obs.checks.get("dependency")
    if dep is not None:
        trend("trend:dependency", "Dependency", "healthy" if dep.ok else f"failing: {dep.detail}")
    growth = slope_per_min(list(history))
    if growth is not None:
        trend("trend:memory_slope", "Memory slope", f"{growth:+.1f} MB/min")
    if baseline.version and obs.version and obs.version != baseline.version:
        trend("trend:version", "Version change", f"{baseline.version} -> {obs.version}")
    changed = sorted(n for n, on in obs.flags.items() if baseline.flags.get(n, on) != on)
    if changed:
        trend(
            "trend:flags",
            "Flags changed",
            ", ".join(f"{n}={'on' if obs.flags[n] else 'off'}" for n in changed),
        )

    cause = diagnosis.root_cause or _ROOT_CAUSES.get(diagnosis.category, "")
    if diagnosis.category == "db_pool_exhaustion" and spike:
        cause = "more traffic than the pool can serve (load, not a leak): it should recover as load drops"
    elif not cause:
        cause = "no known pattern matched; a human should look at the findings"
    context = "; ".join(f for f in findings if not f.startswith("Traffic") or spike)
    return Investigation(
        findings=findings,
        evidence=evidence,
        root_cause=f"{cause}" + (f" ({context})" if context else ""),
        traffic_spike=spike,
    )
