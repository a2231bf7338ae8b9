"""Importers: agent-trace datasets -> agent runs.

- ``tau-bench`` and ``magentic``: τ-bench and Magentic-One, as AgentRx ships them;
- ``who-and-when``: Who&When-style files (``{"history": [{"content", "role", "name"?}], "mistake_agent",
  "mistake_step", "ground_truth"?, "is_correct"?}``), one per file, a list of them, or a folder; the
  file's annotation is kept as ``attributes.annotated`` (its ``mistake_step`` counts from 0, the run's
  steps from 1: step ``mistake_step + 1``), its expected answer as ``attributes.expected.outputs``;
- ``opslab``: opslab's own run JSON (what ``opslab runs ingest`` takes): an object, an array or JSON
  Lines per file, or a folder of such files, each run validated.

Messages become steps, numbered from 1 in transcript order (τ-bench's own ``index`` field; the
position otherwise), so ``step-7`` is the 7th message — the numbering AgentRx's ground truth uses. The
speaker becomes the step's agent ("Orchestrator (thought)" -> "Orchestrator"; a message's ``name``, when
it has one, before its chat role). τ-bench tool calls and their results become tool calls; a result
starting with "Error" is a failed call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from opslab.errors import InvalidInput
from opslab.telemetry.ingest import parse_run
from opslab.telemetry.schema import AgentRunIn, StepIn, ToolCallIn

Format = Literal["tau-bench", "magentic", "who-and-when", "opslab"]
FORMATS: tuple[Format, ...] = ("tau-bench", "magentic", "who-and-when", "opslab")
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)  # transcripts carry no clock: one second per message from here
_SUFFIX = re.compile(r"\s*\(.*\)\s*$")
SUMMARY = 16_000  # per message; longer ones keep their start and their end (where tracebacks are)


def agent_name(role: str) -> str:
    """'Orchestrator (thought)' -> 'Orchestrator'; 'assistant' -> 'Assistant'."""
    name = _SUFFIX.sub("", role).strip() or role
    return name[:1].upper() + name[1:]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _clip(text: str) -> str:
    if len(text) <= SUMMARY:
        return text
    half = SUMMARY // 2
    return f"{text[:half]}\n[… {len(text) - SUMMARY} characters …]\n{text[-half:]}"


def _at(n: int) -> datetime:
    return EPOCH + timedelta(seconds=n)


def _message(n: int, speaker: str, content: Any) -> StepIn:
    """Message ``n`` (1-based) of a transcript as a step, its speaker the step's agent."""
    return StepIn(
        step_id=f"step-{n}",
        name=f"{speaker} message",
        status="success",
        started_at=_at(n),
        ended_at=_at(n),
        output_summary=_clip(_text(content)),
        agent=agent_name(speaker),
    )


def tau_bench_runs(path: Path) -> Iterator[AgentRunIn]:
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise InvalidInput.for_field("PATH", f"{path}: expected a JSON list of τ-bench trajectories")
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "traj" not in item:
            raise InvalidInput.for_field(f"[{i}].traj", "missing: not a τ-bench trajectory")
        yield _tau_run(item)


def _tau_run(item: dict[str, Any]) -> AgentRunIn:
    traj = item["traj"]
    steps: list[StepIn] = []
    calls: dict[str, ToolCallIn] = {}
    for pos, msg in enumerate(traj):
        n = int(msg.get("index") or pos + 1)
        step_id = f"step-{n}"
        content = _text(msg.get("content"))
        tool_calls = msg.get("tool_calls") or []
        summary = (
            content
            if content and content != "None"
            else "; ".join(
                f"{(tc.get('function') or {}).get('name')}({(tc.get('function') or {}).get('arguments')})"
                for tc in tool_calls
            )
        )
        failed = msg.get("role") == "tool" and content.lower().startswith("error")
        steps.append(
            StepIn(
                step_id=step_id,
                name=f"{msg.get('role')} message",
                status="failure" if failed else "success",
                started_at=_at(n),
                ended_at=_at(n),
                output_summary=_clip(summary),
                agent=agent_name(str(msg.get("role") or "unknown")),
            )
        )
        for tc in tool_calls:
            fn = tc.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                args = {"raw": fn.get("arguments")}
            call_id = str(tc.get("id") or f"call-{n}-{len(calls)}")
            calls[call_id] = ToolCallIn(
                call_id=call_id,
                step_id=step_id,
                tool_name=str(fn.get("name") or "tool"),
                status="success",
                args_json=args if isinstance(args, dict | list) else None,
                started_at=_at(n),
            )
        if msg.get("role") == "tool" and msg.get("tool_call_id") in calls:
            call = calls[msg["tool_call_id"]]
            call.result_summary = _clip(content)
            call.ended_at = _at(n)
            if failed:
                call.status, call.error_message = "failure", _clip(content)
    reward = float(item.get("reward") or 0.0)
    task = item.get("task_id")
    trial = item.get("trial")
    run_id = f"tau-{task}" if trial in (None, 0) else f"tau-{task}-{trial}"
    return AgentRunIn(
        run_id=run_id,
        agent_name="tau-bench-retail-agent",
        environment="tau-bench",
        started_at=_at(0),
        ended_at=_at(len(traj) + 1),
        status="success" if reward >= 1.0 else "failure",
        error_message=None if reward >= 1.0 else f"task not solved (reward {reward})",
        steps=steps,
        tool_calls=list(calls.values()),
        attributes={
            "dataset": "tau-bench",
            "trajectory_id": task,
            "reward": reward,
            **_expectations(item),
        },
    )


def _expectations(item: dict[str, Any]) -> dict[str, Any]:
    """What the run was graded against, when the dataset says: the user's instructions, the expected
    tool actions and outputs (``attributes.expected``). RCA compares the run's actions with them."""
    info = item.get("info")
    task = info.get("task") if isinstance(info, dict) else None
    if not isinstance(task, dict):
        return {}
    expected = {
        "instruction": task.get("instruction"),
        "actions": [
            {"name": str(a.get("name")), "arguments": a.get("kwargs") or {}}
            for a in task.get("actions") or []
            if isinstance(a, dict) and a.get("name")
        ],
        "outputs": [str(o) for o in task.get("outputs") or []],
    }
    return {"expected": expected} if any(expected.values()) else {}


def magentic_runs(path: Path) -> Iterator[AgentRunIn]:
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    for f in files:
        data = json.loads(f.read_text())
        if not isinstance(data, list):
            continue  # index files (steps_by_id.json) are not trajectories
        if not all(isinstance(m, dict) and "role" in m for m in data):
            raise InvalidInput.for_field("PATH", f"{f}: expected a list of {{content, role}} messages")
        steps = [_message(n, m["role"], m.get("content")) for n, m in enumerate(data, start=1)]
        yield AgentRunIn(
            run_id=f"magentic-{f.stem}"[:200],
            agent_name="magentic-one",
            environment="magentic-one",
            started_at=_at(0),
            ended_at=_at(len(data) + 1),
            status="failure",
            error_message="task not solved",
            steps=steps,
            attributes={"dataset": "magentic", "trajectory_id": f.stem},
        )


def _files(path: Path, *patterns: str) -> list[Path]:
    return sorted(f for p in patterns for f in path.glob(p)) if path.is_dir() else [path]


def _load(f: Path) -> Any:
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput.for_field("PATH", f"{f}: {exc}") from None


def who_and_when_runs(path: Path) -> Iterator[AgentRunIn]:
    for f in _files(path, "*.json"):
        data = _load(f)
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("history"), list):
                raise InvalidInput.for_field("PATH", f"{f}: expected Who&When records with a history list")
            yield _who_and_when_run(item, f.stem if len(items) == 1 else f"{f.stem}-{i}")


def _who_and_when_run(item: dict[str, Any], stem: str) -> AgentRunIn:
    steps = []
    for n, m in enumerate(item["history"], start=1):
        if not isinstance(m, dict):
            raise InvalidInput.for_field(f"history[{n - 1}]", "expected {content, role, name?}")
        steps.append(_message(n, str(m.get("name") or m.get("role") or "unknown"), m.get("content")))
    attributes: dict[str, Any] = {"dataset": "who-and-when", "trajectory_id": stem}
    step, agent = item.get("mistake_step"), item.get("mistake_agent")
    if agent and str(step).strip().isdigit():
        attributes["annotated"] = {"step": int(str(step).strip()) + 1, "agent": str(agent)}
    if item.get("ground_truth") not in (None, ""):
        attributes["expected"] = {"outputs": [str(item["ground_truth"])]}
    solved = item.get("is_correct") is True
    return AgentRunIn(
        run_id=f"ww-{stem}"[:200],
        agent_name="who-and-when",
        environment="who-and-when",
        started_at=_at(0),
        ended_at=_at(len(steps) + 1),
        status="success" if solved else "failure",
        error_message=None if solved else "task not solved",
        steps=steps,
        attributes=attributes,
    )


def opslab_runs(path: Path) -> Iterator[AgentRunIn]:
    for f in _files(path, "*.json", "*.jsonl"):
        text = f.read_text()
        try:
            whole = json.loads(text)
            items = whole if isinstance(whole, list) else [whole]
        except ValueError:
            try:
                items = [json.loads(line) for line in text.splitlines() if line.strip()]
            except ValueError as exc:
                raise InvalidInput.for_field("PATH", f"{f}: neither JSON nor JSON Lines ({exc})") from None
        for i, item in enumerate(items):
            yield parse_run(item, loc_prefix=(f.name, i))


def import_runs(fmt: Format, path: Path) -> Iterator[AgentRunIn]:
    if not path.exists():
        raise InvalidInput.for_field("PATH", f"{path}: no such file or directory")
    if fmt == "tau-bench":
        for f in _files(path, "*.json"):
            yield from tau_bench_runs(f)
    elif fmt == "magentic":
        yield from magentic_runs(path)
    elif fmt == "who-and-when":
        yield from who_and_when_runs(path)
    elif fmt == "opslab":
        yield from opslab_runs(path)
    else:
        raise InvalidInput.for_field("--format", f"{fmt!r}: expected one of {', '.join(FORMATS)}")
