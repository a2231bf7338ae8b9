"""The responder's knobs, one typed model (``Settings`` builds it from the environment; tests build it
directly). Every threshold is generic: nothing here knows a particular fault's numbers.

Why the error-rate threshold is 10 % and not the seed's 50: the seed's detector ANDs three signals
(errors > 50 %, pool critical, slow responses), which only ever fires on a total pool outage. Ours ORs
independent signals, so a single one must already mean "users are hurting": 10 % of requests failing
for two polls in a row is a page for any SRE, and a bad deploy that breaks one route in five (20 %) or
a dependency behind some of the traffic would never reach 50 %. Noise is handled by the baseline and
the ``consecutive`` rule, not by a threshold so high it misses real incidents.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from opslab.responder.model import Risk


class ResponderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval_s: float = Field(30.0, gt=0, description="Seconds between two polls of the target.")
    error_rate_threshold: float = Field(
        10.0, ge=0, le=100, description="Percent of failed requests that is always an anomaly."
    )
    error_rate_margin: float = Field(
        5.0, ge=0, description="Percentage points above the baseline's error rate that are an anomaly."
    )
    latency_factor: float = Field(3.0, gt=1, description="p95 above factor x baseline is an anomaly ...")
    latency_margin_ms: float = Field(200.0, ge=0, description="... and above baseline + this margin.")
    latency_absolute_ms: float = Field(
        1000.0, gt=0, description="p95 above this is an anomaly while no baseline exists yet."
    )
    memory_ratio: float = Field(0.9, gt=0, le=1, description="RSS above this share of its limit.")
    memory_growth_mb_per_min: float = Field(
        60.0, gt=0, description="RSS growing faster than this (over the last polls) is an anomaly."
    )
    consecutive: int = Field(2, ge=1, description="Anomalous polls in a row before an incident opens.")
    baseline_polls: int = Field(20, ge=3, description="Healthy polls the baseline is computed over.")
    min_baseline: int = Field(3, ge=1, description="Healthy polls before relative thresholds apply.")
    settle_polls: int = Field(
        5,
        ge=1,
        description="Healthy polls in a row a changed version or flag must be seen with before the baseline "
        "takes it (the first poll after a flip is not yet its effect).",
    )
    history_size: int = Field(30, ge=3, description="Observations kept in the incident state.")
    settle_s: float = Field(10.0, ge=0, description="Wait after an action before verifying.")
    verify_polls: int = Field(2, ge=1, description="Clean polls in a row that verify a recovery.")
    verify_interval_s: float = Field(5.0, ge=0, description="Seconds between verification polls.")
    max_attempts: int = Field(3, ge=1, description="Verifications (one per action) before escalating.")
    max_actions: int = Field(3, ge=1, description="Actions executed per incident at most.")
    cooldown_s: float = Field(60.0, ge=0, description="An action is not run again within this time.")
    approval_risk: Risk | None = Field(
        None,
        description="Actions the catalog rates this risky or more wait for a human; None: none wait "
        "(enabling the responder is the consent to act, within the other guardrails).",
    )
    dry_run: bool = Field(False, description="Plan, audit and escalate; never execute.")
    auto_approve: bool = Field(False, description="Lift ``approval_risk``: nothing waits for a human.")
    probe_timeout_s: float = Field(5.0, gt=0, description="How long one call to the target may take.")
    host_memory_floor_mb: float | None = Field(
        None, ge=0, description="Host memory available under this is a signal; None: 5 % of it, >= 256 MB."
    )
    min_confidence: float = Field(
        0.3, ge=0, le=1, description="Below this diagnosis confidence nothing is executed."
    )
    high_risk_confidence: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Below this confidence a high-risk action (a restart) first waits ``confirm_s`` and runs "
        "only if the fault outlives the wait: a confidence just over ``min_confidence`` is not enough.",
    )
    confirm_s: float = Field(15.0, ge=0, description="How long a high-risk action waits to be confirmed.")
