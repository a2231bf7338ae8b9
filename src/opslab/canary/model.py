"""The canary's typed results, from one window of load up to one run.

    Measurement   what one window of open-loop load measured (``measure``)
    Judgement     the statistics and verdict over the A and B windows (``judge_windows``)
    MiniReport    the three numbers of a target's own mini report (``mode: report``)
    MetricResult  one custom metric, B against A, with its own verdict
    WindowSummary one window as it ran: arm, requests, errors, p95
    Outcome       Execute + Judge: the judgement or the report, and what cut the run short
    CanaryResult  one run: an outcome plus the flags, the health gate, what was applied, where it was written
    DryRun        what a run would do; nothing sent, nothing changed

A result is nested here (a judgement is there or it is not); on the wire — the job's result, ``--json``
and the history — it is one flat object, ``history.RunRecord``, with the keys it has had since v1.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from opslab.canary.plan import ThresholdSpec
from opslab.judge import percentile

Verdict = Literal["PASS", "EDGE", "FAIL"]
# A run's decision: a verdict, or INTERRUPTED (a signal or a cancel stopped it; nothing was judged).
Final = Literal["PASS", "EDGE", "FAIL", "INTERRUPTED"]
Decision = Literal["PASS", "EDGE", "FAIL", "INTERRUPTED", "DRY-RUN"]
Flags = dict[str, JsonValue]
Source = Literal["load", "report", "prometheus"]

# `opslab canary run`'s exit codes, so a pipeline can gate a rollout on them (docs/canary.md).
EXIT_PASS, EXIT_EDGE, EXIT_FAIL, EXIT_BLOCKED, EXIT_NOT_RESTORED, EXIT_INTERRUPTED = 0, 10, 11, 12, 13, 130


def exit_code_of(decision: str, *, blocked: bool = False, restore_failed: bool = False) -> int:
    """A target left with the candidate flags outranks everything: a pipeline must not carry on."""
    if restore_failed:
        return EXIT_NOT_RESTORED
    if decision == "INTERRUPTED":
        return EXIT_INTERRUPTED
    if blocked:
        return EXIT_BLOCKED
    return {"PASS": EXIT_PASS, "EDGE": EXIT_EDGE}.get(decision, EXIT_FAIL)


class Measurement(BaseModel):
    """One arm's window: every successful request's latency (from its scheduled send), the errors, and
    how well the generator kept its schedule."""

    arm: str
    latencies_ms: list[float] = Field(default_factory=list)
    errors: int = 0
    sent: int = 0
    duration_s: float = 0.0
    # Per request, measured latency minus the server's own time, when the target reports it.
    overhead_ms: list[float] = Field(default_factory=list)
    # How far behind its schedule the generator sent (0 for a generator that keeps up).
    max_send_lag_ms: float = 0.0
    # Responses by HTTP status ("timeout", "error": no response).
    statuses: dict[str, int] = Field(default_factory=dict)

    @property
    def achieved_qps(self) -> float:
        return self.sent / self.duration_s if self.duration_s else 0.0

    def generator_stall(self, counted_s: float) -> str | None:
        """Why this window measured the load generator's machine rather than the target, or None. Late
        requests are timed from their schedule (open-loop load must), so a generator that fell behind
        (its machine busy) adds its lag to them: enough to move the p95 when the lag is long enough for a
        40th of the window's requests to wait (half the tail a p95 reads) and a fifth of the p95 or more."""
        lag = self.max_send_lag_ms
        if not self.latencies_ms or lag < 25.0 * counted_s:
            return None
        p95 = percentile(self.latencies_ms, 95)
        if lag < 0.2 * p95:
            return None
        return f"the load generator fell {lag:.0f} ms behind its schedule (p95 {p95:.1f} ms)"

    @property
    def error_rate_pct(self) -> float:
        return 100.0 * self.errors / self.sent if self.sent else 0.0


class Judgement(BaseModel):
    """ΔP95, ΔQPS and the candidate's error rate with their statistics, and the verdict they give.
    Undefined statistics (an arm without a successful request) are NaN; ``measured`` is then false."""

    measured: bool
    delta_p95_pct: float
    delta_p95_ci: tuple[float, float]
    delta_qps_pct: float
    delta_qps_ci: tuple[float, float]
    error_rate_pct: float
    error_rate_a_pct: float
    ab_imbalance_pct: float
    srm_p: float
    p95_a_ms: float
    p95_b_ms: float
    qps_a: float
    qps_b: float
    samples: tuple[int, int]
    mw_p: float
    hl_shift_ms: float
    decision: Verdict
    # ΔP95 of each round on its own (its A window against its B window); empty from Prometheus.
    delta_p95_by_round: list[float] = Field(default_factory=list)
    reason: str
    warnings: list[str] = Field(default_factory=list)


class MiniReport(BaseModel):
    """ΔP95, ΔQPS and Err% as a target reported them (None: ``n/a``, not measured), and the report itself."""

    model_config = ConfigDict(frozen=True)
    delta_p95_pct: float | None
    delta_qps_pct: float | None
    error_rate_pct: float | None
    ab_imbalance_pct: float | None = None  # from the arms' sample counts when the report gives them
    samples: tuple[int, int] | None = None  # each arm's sample count, when the report gives them
    srm_p: float | None = None  # sample-ratio mismatch of those counts
    other: dict[str, str] = Field(default_factory=dict)
    text: str = ""

    @property
    def measured(self) -> bool:
        return self.delta_p95_pct is not None and self.error_rate_pct is not None


class MetricResult(BaseModel):
    """A custom metric: each arm's value, B's change against A, and the verdict its thresholds give."""

    name: str
    source: Literal["load", "prometheus"]
    direction: Literal["lower", "higher"]
    a: float | None
    b: float | None
    delta_pct: float | None
    decision: Verdict
    critical: bool
    reason: str


class WindowSummary(BaseModel):
    """One ABAB window as it ran: its arm, and what our load measured in it (p95 None: no success)."""

    index: int = Field(description="0-based, in the order the windows ran.")
    arm: Literal["A", "B"]
    sent: int
    errors: int
    p95_ms: float | None
    qps: float
    served_p95_ms: float | None = Field(
        None,
        description="p95 of the time the target says it worked (Server-Timing or X-Server-Time-Ms), when it "
        "reports it for every request: the window without the load generator's own delays.",
    )


class Outcome(BaseModel):
    """What Execute and Judge concluded: from our own windows (``judgement``, measured by the load
    generator or read from Prometheus) or the target's report (``report``), or why there is neither; the
    custom metrics; and what cut the run short."""

    decision: Final
    reason: str
    judgement: Judgement | None = None
    judged_by: Literal["load", "prometheus"] = "load"
    # Judged by Prometheus while our load ran: the load generator's own judgement of the same windows.
    load_check: Judgement | None = None
    report: MiniReport | None = None
    metrics: list[MetricResult] = Field(default_factory=list)
    target_verdict: Verdict | None = None
    our_verdict: Verdict | None = None
    partial: str | None = None
    early_stop: str | None = None
    interrupted: str | None = None
    restore_failed: bool = False
    warnings: list[str] = Field(default_factory=list)
    windows: list[WindowSummary] = Field(default_factory=list)

    @property
    def source(self) -> Source | None:
        return "report" if self.report else self.judged_by if self.judgement else None

    @property
    def measured(self) -> bool:
        if self.judgement:
            return self.judgement.measured
        return bool(self.report and self.report.measured)

    @property
    def delta_p95_pct(self) -> float | None:
        if self.judgement:
            return self.judgement.delta_p95_pct
        return self.report.delta_p95_pct if self.report else None

    @property
    def delta_qps_pct(self) -> float | None:
        if self.judgement:
            return self.judgement.delta_qps_pct
        return self.report.delta_qps_pct if self.report else None

    @property
    def error_rate_pct(self) -> float | None:
        if self.judgement:
            return self.judgement.error_rate_pct
        return self.report.error_rate_pct if self.report else None

    @property
    def ab_imbalance_pct(self) -> float | None:
        if self.judgement:
            return self.judgement.ab_imbalance_pct
        return self.report.ab_imbalance_pct if self.report else None

    @property
    def srm_p(self) -> float | None:
        if self.judgement:
            return self.judgement.srm_p
        return self.report.srm_p if self.report else None

    @property
    def samples(self) -> tuple[int, int] | None:
        if self.judgement:
            return self.judgement.samples
        return self.report.samples if self.report else None

    def settled(self) -> Outcome:
        """An interrupted run is INTERRUPTED whatever it measured; an early stop is a FAIL whatever the
        numbers said; a partial run's PASS is only EDGE."""
        if self.interrupted:
            return self.model_copy(
                update={"decision": "INTERRUPTED", "reason": f"interrupted: {self.interrupted}"}
            )
        if self.early_stop:
            return self.model_copy(update={"decision": "FAIL", "reason": f"early stop: {self.early_stop}"})
        if self.partial and self.decision == "PASS":
            reason = f"inconclusive (partial run): {self.reason}"
            return self.model_copy(update={"decision": "EDGE", "reason": reason})
        return self


class CanaryResult(Outcome):
    """One canary run, as the summary, the mini report, the history and the job report it."""

    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    candidate_flags: Flags
    previous_flags: Flags = Field(default_factory=dict)
    applied: bool = False
    apply_deferred: str | None = None
    blocked: bool = False
    summary_path: str | None = None
    sweep_trial: int | None = None
    sweep_confirmation_of: int | None = None


class DryRun(BaseModel):
    """The plan and what a run would do, in order; no load is sent and no flag changed."""

    dry_run: Literal[True] = True
    decision: Literal["DRY-RUN"] = "DRY-RUN"
    reason: str = "dry run: no load sent, no flag changed"
    applied: Literal[False] = False
    started_at: AwareDatetime
    mode: Source
    target: str
    candidate_flags: Flags
    windows: int
    window_sec: float
    qps: float
    planned_seconds: float
    time_budget: float
    thresholds: ThresholdSpec
    would: list[str]
