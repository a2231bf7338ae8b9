"""``opslab sandbox chaos-suite``: every scenario against a blind responder, scored by the hidden key.

One sandbox world on free ports serves the whole suite. Per scenario: the world is put back to a clean
state (fresh target process, dependency up, v1 deployed, flags off, no breaks), a fresh responder learns
the healthy baseline over a few polls, the chaos server injects the scenario's faults, and the responder
runs exactly as it would in production (``poll_once`` at the poll interval: detect, diagnose, act through
the action server, verify). It is given the target's URL and the action server's URL and token, nothing
else: it never learns the chaos server exists. The knowledge folder is shared by the whole suite, so an
incident learned in one scenario is retrieved in the next of its kind.

The responder runs with the default autonomy policy: no action waits for a human (approval is a policy the
user turns on, tested on its own).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from opslab.errors import Unavailable
from opslab.knowledge import KnowledgeBase
from opslab.responder import (
    HttpActionExecutor,
    HttpTargetProbe,
    InMemoryIncidentStore,
    Responder,
    ResponderConfig,
)
from opslab.sandbox.beside import REPEAT_COOLDOWN_S, Alongside, Beside
from opslab.sandbox.chaos import Scenario, load_scenario, load_scenarios, run_method, scenarios_folder
from opslab.sandbox.suite_model import ScenarioScore, SuiteResult, fault_label, score, summarize
from opslab.sandbox.supervisor import TargetOptions, World, WorldPorts

Progress = Callable[[str, ScenarioScore | None], None]
WARMUP_POLLS = 5
CONTROL_POLLS = 12
FAULT_DEADLINE_S = 90.0
HEALTHY_TAIL_POLLS = 3


def suite_scenarios(
    *, drills: bool = False, only: list[str] | None = None, files: list[Path] | None = None
) -> list[Scenario]:
    """The packaged scenarios (``drills``: and the escalation drills), or only those named, plus any
    chaostoolkit experiment ``files`` (standard ones; an ``opslab`` extension adds the scoring key)."""
    if files:
        extra = [load_scenario(f) for f in files]
        return (
            extra
            if not only and not drills and files
            else [*suite_scenarios(drills=drills, only=only), *extra]
        )
    scenarios = load_scenarios()
    if drills:
        scenarios += load_scenarios(scenarios_folder() / "drills")
    if only:
        known = {s.name for s in scenarios}
        unknown = [n for n in only if n not in known]
        if unknown:
            from opslab.errors import InvalidInput

            raise InvalidInput.for_field(
                "--scenario", f"unknown {unknown}; known: {', '.join(sorted(known))}"
            )
        scenarios = [s for s in scenarios if s.name in only]
    return scenarios


def run_suite(
    data_dir: Path,
    *,
    poll_interval_s: float = 1.0,
    repeat: int = 1,
    scenarios: list[Scenario] | None = None,
    progress: Progress | None = None,
    beside: Beside = "none",
) -> SuiteResult:
    """Every scenario ``repeat`` times, each with ``beside`` running alongside (``sandbox.beside``)."""
    chosen = scenarios if scenarios is not None else suite_scenarios()
    started = datetime.now(UTC)
    # A metrics window of three polls: short enough that a fix shows within seconds, long enough to smooth.
    window_s = max(2.0, 3 * poll_interval_s)
    options = TargetOptions(window_s=window_s, traffic_rps=20.0)
    knowledge_dir = data_dir / "knowledge"
    scores: list[ScenarioScore] = []
    with World.start(data_dir, ports=WorldPorts(0, 0, 0, 0), target=options) as world:
        for r in range(repeat):
            for scenario in chosen:
                if progress:
                    progress(f"{scenario.name} ({fault_label(scenario)})", None)
                _reset(world)
                result = _run_scenario(
                    world,
                    scenario,
                    knowledge_dir,
                    poll_interval_s=poll_interval_s,
                    window_s=window_s,
                    repeat=r,
                    beside=beside,
                )
                scores.append(result)
                if progress:
                    progress(scenario.name, result)
    return SuiteResult(
        started_at=started,
        beside=beside,
        poll_interval_s=poll_interval_s,
        repeat=repeat,
        scenarios=scores,
        summary=summarize(scores),
    )


def responder_config(poll_interval_s: float, window_s: float, cooldown_s: float = 0.0) -> ResponderConfig:
    return ResponderConfig(
        poll_interval_s=poll_interval_s,
        settle_s=window_s + poll_interval_s,  # the metrics window must no longer hold pre-fix requests
        verify_polls=2,
        verify_interval_s=poll_interval_s,
        cooldown_s=cooldown_s,
        settle_polls=max(3, round(15 / poll_interval_s)),
    )


def _run_scenario(
    world: World,
    scenario: Scenario,
    knowledge_dir: Path,
    *,
    poll_interval_s: float,
    window_s: float,
    repeat: int,
    beside: Beside = "none",
) -> ScenarioScore:
    from langgraph.checkpoint.memory import InMemorySaver

    store = InMemoryIncidentStore()
    actions = HttpActionExecutor(world.url("actions"), world.action_token)
    responder = Responder(
        probe=HttpTargetProbe(world.url("target")),
        actions=actions,
        store=store,
        knowledge=KnowledgeBase.load(knowledge_dir),
        knowledge_dir=knowledge_dir,
        checkpointer=InMemorySaver(),
        config=responder_config(poll_interval_s, window_s, REPEAT_COOLDOWN_S if beside == "repeat" else 0.0),
    )
    along = Alongside(beside, world.url("target"), responder)
    try:
        return _drive(world, scenario, responder, store, actions, along, poll_interval_s, repeat)
    finally:
        along.stop()
        _stop_breaks(world)


def _drive(
    world: World,
    scenario: Scenario,
    responder: Responder,
    store: InMemoryIncidentStore,
    actions: HttpActionExecutor,
    along: Alongside,
    poll_interval_s: float,
    repeat: int,
) -> ScenarioScore:
    polls = 0
    for _ in range(WARMUP_POLLS):
        responder.poll_once()
        polls += 1
        time.sleep(poll_interval_s)
    warmup = store.list()
    along.start()
    injected_at = datetime.now(UTC)
    run_method(scenario, world.url("chaos"), world.chaos_token)
    along.injected()
    control = scenario.expected.control
    deadline = time.monotonic() + FAULT_DEADLINE_S
    healthy_tail = 0
    for n in range(10_000):
        time.sleep(poll_interval_s)
        along.tick()
        responder.poll_once()
        polls += 1
        incidents = store.list()
        if control:
            if n + 1 >= CONTROL_POLLS:
                break
            continue
        finished = bool(incidents) and all(i.finished for i in incidents)
        if finished and incidents[0].status == "escalated" and scenario.expected.outcome == "escalated":
            break
        healthy_tail = healthy_tail + 1 if finished and _healthy(actions) else 0
        if healthy_tail >= HEALTHY_TAIL_POLLS and along.repeats_left:
            # Fixed: the same fault again at once, while the action that fixed it cools down.
            along.repeats_left -= 1
            _stop_breaks(world)
            run_method(scenario, world.url("chaos"), world.chaos_token)
            healthy_tail, deadline = 0, time.monotonic() + FAULT_DEADLINE_S
            continue
        if healthy_tail >= HEALTHY_TAIL_POLLS or time.monotonic() > deadline:
            break
    result = score(
        scenario,
        [i for i in store.list() if i.id not in {w.id for w in warmup}] + warmup,
        injected_at=injected_at,
        healthy_at_end=_healthy(actions),
        repeat=repeat,
        polls=polls,
    )
    result.beside = along.mode
    if warmup:
        result.note = f"{len(warmup)} incident(s) opened during the warm-up, before any fault"
    return result


def _healthy(actions: HttpActionExecutor) -> bool:
    return actions.verify().get("is_healthy") is True


def _reset(world: World) -> None:
    """A clean world: no breaks, a fresh target process, the dependency up, v1 deployed, flags off."""
    _stop_breaks(world)
    headers = {"X-Sandbox-Token": world.sandbox_token}
    with httpx.Client(timeout=5.0) as http:
        try:
            http.get(f"{world.url('dependency')}/healthz").raise_for_status()
        except httpx.HTTPError:
            world.restart("dependency")
        target = world.url("target")
        http.post(f"{target}/admin/deploy", json={"version": "v1"}, headers=headers).raise_for_status()
        http.post(f"{target}/admin/flags", json={"new_ranking": False}, headers=headers).raise_for_status()
    world.restart("target")
    # Let the fresh target's own traffic fill one metrics window before the responder's first poll.
    time.sleep(world.target_options.window_s)


def _stop_breaks(world: World) -> None:
    chaos = world.url("chaos")
    with httpx.Client(timeout=5.0, headers={"Authorization": f"Bearer {world.chaos_token}"}) as http:
        try:
            breaks = http.get(f"{chaos}/api/v1/breaks").json().get("breaks", [])
            for brk in breaks:
                if brk.get("status") == "active":
                    http.post(f"{chaos}/api/v1/break/{brk['fault']}/{brk['id']}/stop")
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"chaos server at {chaos}: {exc}") from None
