"""Each benchmark's headline figures from its result: the figure, the floor or peer measured in the same
run, their ratio, the target and whether it is met (``docs/performance.md`` lists them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    figure: str
    value: str
    peer: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None


def _g(d: Any, *path: str | int) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}{unit}"


def _ratio(a: Any, b: Any, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}×" if isinstance(a, int | float) and isinstance(b, int | float) and b else "—"


def _ingest_floor(r: dict[str, Any], db: str) -> str:
    """Whose floor a database's batch ingest stands beside: its own driver's since results say which
    (``floor.how``), raw SQLite's before."""
    how = _g(r, db, "floor", "how")
    return {
        "sqlite3 executemany": "raw SQLite executemany",
        "psycopg executemany": "raw PostgreSQL executemany (psycopg)",
    }.get(how, "raw SQLite executemany")


def ingest(r: dict[str, Any]) -> list[Row]:
    rows = []
    for db in ("sqlite", "postgres"):
        batch = _g(r, db, "batch", "runs_per_s")
        if batch is None:
            continue
        floor = _g(r, db, "floor", "runs_per_s") or _g(r, "floor_sqlite_executemany", "runs_per_s")
        # Median of the rounds' ratios when the result has rounds (batch and floor measured alternately).
        ratio = _g(r, db, "batch_over_floor") or (batch / floor if floor else None)
        rows.append(
            Row(
                f"{db}: batch ingest, runs/s",
                _num(batch, digits=0),
                f"{_ingest_floor(r, db)} {_num(floor, digits=0)}",
                f"{ratio:.2f}×" if ratio else "—",
                "≥ 2,000 runs/s and ≥ 0.3× floor",
                batch >= 2000 and ratio is not None and ratio >= 0.3,
            )
        )
    for db in ("sqlite", "postgres"):
        cpu_ratio = _g(r, db, "batch_over_floor_cpu")
        server_cpu = _g(r, db, "batch", "server_cpu_us_per_run")
        floor_cpu = _g(r, db, "floor", "cpu_us_per_run")
        if cpu_ratio is not None:
            rows.append(
                Row(
                    f"{db}: batch ingest, server CPU per run",
                    _num(server_cpu, " µs"),
                    f"{_ingest_floor(r, db)} {_num(floor_cpu, ' µs')}",
                    f"{cpu_ratio:.2f}×",
                    "≥ 0.3× floor (CPU time: unstretched by the machine's load)",
                    cpu_ratio >= 0.3,
                )
            )
    decode = _g(r, "floor_otlp_protobuf_decode", "spans_per_s")
    for db in ("sqlite", "postgres"):
        for encoding in ("protobuf", "json"):
            spans = _g(r, db, "otlp", encoding, "spans_per_s")
            if spans is not None:
                rows.append(
                    Row(
                        f"{db}: OTLP trace export ({encoding}, gzip), spans/s",
                        _num(spans, digits=0),
                        f"protobuf decode alone {_num(decode, digits=0)}",
                        _ratio(spans, decode, 3),
                    )
                )
    found = r.get("otlp_over_floor")
    over: dict[str, Any] = found if isinstance(found, dict) else {}
    otlp = (  # the service, then a minimal writer of the store's own rows, each beside the check's floor
        ("sqlite: OTLP protobuf exports one after another (40,000 spans in 20), spans/s", "", 0.2),
        (
            "sqlite: the same exports as the store's rows (trace, run, steps) by a minimal raw-sqlite3 "
            "writer, spans/s",
            "schema_floor_",
            None,
        ),
    )
    found = r.get("otlp_varied_over_floor")
    varied: dict[str, Any] = found if isinstance(found, dict) else {}
    if varied.get("over_floor") is not None:
        rows.append(
            Row(
                "sqlite: OTLP protobuf exports as agents send them (20 of 30-300 traces of 2-15 spans, "
                "times and latencies their own), spans/s",
                _num(varied.get("spans_per_s"), digits=0),
                "decode + raw sqlite3 executemany of a row per span "
                + _num(varied.get("floor_spans_per_s"), digits=0),
                _num(varied["over_floor"], "×", 3),
            )
        )
    for figure, prefix, target in otlp:
        ratio = over.get(f"{prefix}over_floor")
        if ratio is None:
            continue
        rows.append(
            Row(
                figure,
                _num(over.get(f"{prefix}spans_per_s"), digits=0),
                "decode + raw sqlite3 executemany of a row per span "
                + _num(over.get("floor_spans_per_s"), digits=0),
                _num(ratio, "×", 3),
                f"≥ {target}× floor" if target else "—",
                ratio >= target if target else None,
            )
        )
    return rows


def overview(r: dict[str, Any]) -> list[Row]:
    rows = []
    for db in ("sqlite", "postgres"):
        p50 = _g(r, db, "overview_all_ms", "p50")
        floor = _g(r, db, "floor_raw_sql_all_ms_p50") or _g(r, db, "naive_sql_all_ms_p50")
        if p50 is not None:
            rows.append(
                Row(
                    f"{db}: fleet overview over 100,000 runs, p50",
                    _num(p50, " ms"),
                    f"the same aggregates as plain SQL {_num(floor, ' ms')}",
                    _ratio(p50, floor),
                    "< 200 ms",
                    p50 < 200,
                )
            )
        pair = _g(r, db, "runs_only", "168h")
        if isinstance(pair, dict) and pair.get("series_over_overview") is not None:
            rows.append(
                Row(
                    f"{db}: fleet series over 100,000 runs (last 168 h), p50",
                    _num(pair.get("series_ms_p50"), " ms"),
                    f"the fleet overview over the same runs {_num(pair.get('overview_ms_p50'), ' ms')}",
                    _num(pair.get("series_over_overview"), "×", 2),
                    "≤ 2×",
                    pair["series_over_overview"] <= 2,
                )
            )
    return rows


def ui(r: dict[str, Any]) -> list[Row]:
    rows = []
    for db in ("sqlite", "postgres"):
        cases = {k: v for k, v in (r.get(db) or {}).items() if isinstance(v, dict)}
        if not cases:
            continue
        name, worst = max(cases.items(), key=lambda kv: kv[1]["page_p50_ms"])
        rows.append(
            Row(
                f"{db}: slowest dashboard runs page ({name}) over 100,000 runs, p50",
                _num(worst["page_p50_ms"], " ms"),
                f"JSON API, same filter {_num(worst['api_p50_ms'], ' ms')}",
                _ratio(worst["page_p50_ms"], worst["api_p50_ms"]),
                "< 300 ms",
                worst["page_p50_ms"] < 300,
            )
        )
    return rows


def rca(r: dict[str, Any]) -> list[Row]:
    p50 = _g(r, "embedded_latency", "p50_ms")
    rows = [
        Row(
            "RCA job, submit to report (embedded), p50",
            _num(p50, " ms"),
            target="< 200 ms",
            met=p50 is not None and p50 < 200,
        )
    ]
    if _g(r, "rq_throughput", "jobs_per_s") is not None:
        rows.append(
            Row(
                f"RCA jobs on {_g(r, 'rq_throughput', 'workers')} RQ workers, jobs/s",
                _num(_g(r, "rq_throughput", "jobs_per_s")),
                target=f"{_g(r, 'rq_throughput', 'failed')} failed",
            )
        )
    return rows


def rca_eval(r: dict[str, Any]) -> list[Row]:
    """Transfer first: fitted on one system, scored on the other, beside the baselines of the same run;
    then how well it learns one system (leave one run out)."""
    rows = []
    for direction, res in (_g(r, "leave_one_system_out") or {}).items():
        loc = _g(res, "localizer")
        if "->" not in direction or not loc:
            continue
        base = _g(res, "baselines") or {}
        majority = _g(base, "majority_agent", "agent_accuracy")
        agent, step, cw = loc["agent_accuracy"], loc["step_accuracy"], loc["confident_wrong_rate"]
        best = max(
            ((name, _g(base, name, "step_accuracy")) for name in ("first_error", "last_speaker")),
            key=lambda kv: kv[1] or 0.0,
        )
        rows += [
            Row(
                f"{direction} (unseen system): responsible agent",
                f"{agent:.1%}",
                f"held-out majority agent {majority:.1%}" if majority is not None else "—",
                _ratio(agent, majority),
                "≥ majority agent",
                majority is not None and agent >= majority,
            ),
            Row(
                f"{direction} (unseen system): decisive step",
                f"{step:.1%}",
                f"{best[0].replace('_', ' ')} heuristic {best[1]:.1%}" if best[1] is not None else "—",
                _ratio(step, best[1]),
                "≥ 20%",
                step >= 0.20,
            ),
            Row(
                f"{direction} (unseen system): confident and wrong",
                f"{cw:.1%}",
                target="≤ 15%",
                met=cw <= 0.15,
            ),
        ]
    ece = _g(r, "leave_one_system_out", "shipped_calibration_cross_fitted", "ece")
    if ece is not None:
        rows.append(Row("shipped calibration on unseen systems, expected calibration error", f"{ece:.3f}"))
    for name, res in (_g(r, "leave_one_run_out") or {}).items():
        rows.append(
            Row(
                f"{name} (within the system, leave one run out): agent / step",
                f"{res['agent_accuracy']:.1%} / {res['step_accuracy']:.1%}",
            )
        )
    long = _g(r, "latency_long", "300", "p50_ms")
    if long is not None:
        rows.append(
            Row(
                "RCA of a 300-step transcript (deterministic), p50",
                _num(long, " ms"),
                target="< 200 ms",
                met=long < 200,
            )
        )
    return rows


def lab_overhead(r: dict[str, Any]) -> list[Row]:
    ours, floor = _g(r, "per_trial_ms", "opslab"), _g(r, "per_trial_ms", "floor")
    ratio = r.get("ratio")
    rows = [
        Row(
            f"{r.get('trials')} no-op trials, ms per trial",
            _num(ours, " ms", 2),
            f"xargs -P {r.get('concurrency')} {_num(floor, ' ms', 2)}",
            _num(ratio, "×", 2),
            "≤ 1.5×",
            ratio is not None and ratio <= 1.5,
        )
    ]
    ours_cpu, floor_cpu = _g(r, "cpu_per_trial_ms", "opslab"), _g(r, "cpu_per_trial_ms", "floor")
    if ours_cpu is not None:  # what a busy machine disturbs least: the runner's CPU beside the floor's
        rows.append(
            Row(
                "the same, CPU ms per trial (runner and harness)",
                _num(ours_cpu, " ms", 2),
                f"xargs -P {r.get('concurrency')} {_num(floor_cpu, ' ms', 2)}",
                _num(r.get("cpu_ratio"), "×", 2),
            )
        )
    rq = r.get("rq_executor")
    if isinstance(rq, dict) and rq.get("ratio_to_floor") is not None:
        rows.append(
            Row(
                f"the same on {rq.get('workers', 2)} RQ workers, ms per trial",
                _num(rq.get("per_trial_ms"), " ms", 2),
                str(rq.get("floor", "xargs")),
                _num(rq["ratio_to_floor"], "×", 2),
            )
        )
    return rows


def lab_isolation(r: dict[str, Any]) -> list[Row]:
    peer = _g(r, "modes", "host_full (peer)", "per_trial_ms")
    limit = _g(r, "budget", "limit_ms")
    rows = []
    for name, m in (r.get("modes") or {}).items():
        if "peer" in name:
            continue
        row = Row(
            f"trial isolation {name}, ms per trial",
            _num(m.get("per_trial_ms"), " ms"),
            f"host process, full network {_num(peer, ' ms')}",
            _num(m.get("ratio_to_peer"), "×", 2),
        )
        if name == "host_none" and limit is not None:
            row.target, row.met = f"≤ {_num(limit, ' ms')}", bool(_g(r, "budget", "met"))
        rows.append(row)
        floor_s = _g(r, "floor", "wall_s")
        if m.get("ratio_to_xargs") is not None and floor_s is not None:
            row = Row(
                f"{r.get('trials')} no-op trials, {name}, concurrency {r.get('concurrency')}: wall",
                _num(m.get("wall_s"), " s", 2),
                f"xargs -P {r.get('concurrency')} of the same harness {_num(floor_s, ' s', 2)}",
                _num(m.get("ratio_to_xargs"), "×", 2),
            )
            if name == "host_none":
                row.target, row.met = "≤ 3×", m["ratio_to_xargs"] <= 3
            rows.append(row)
        floor_cpu = _g(r, "floor", "cpu_ms_per_trial")
        if name == "host_none" and m.get("cpu_ms_per_trial") is not None and floor_cpu:
            rows.append(
                Row(
                    f"no-op trial, {name}: the machine's CPU per trial",
                    _num(m["cpu_ms_per_trial"], " ms", 2),
                    f"xargs -P {r.get('concurrency')} of the same harness {_num(floor_cpu, ' ms', 2)}",
                    _num(m["cpu_ms_per_trial"] / floor_cpu, "×", 2),
                )
            )
    split = r.get("split") or {}
    if split.get("marginal_ms_per_trial") is not None and split.get("xargs_ms_per_trial"):
        rows.append(
            Row(
                f"host_none: each trial past the first (the run's fixed cost "
                f"{_num(split.get('one_trial_wall_s'), ' s', 2)}, "
                f"{_num(split.get('fixed_share'), '', 2)} of its wall)",
                _num(split["marginal_ms_per_trial"], " ms", 2),
                f"xargs -P {r.get('concurrency')}, per trial {_num(split['xargs_ms_per_trial'], ' ms', 2)}",
                _num(split["marginal_ms_per_trial"] / split["xargs_ms_per_trial"], "×", 2),
            )
        )
    fs = r.get("filesystem") or {}
    if fs.get("file_create_us_before") is not None:
        rows.append(
            Row(
                "a file created where the runs are: CPU before / after the runs (a run creates a dozen a "
                "trial)",
                f"{_num(fs['file_create_us_before'], ' µs')} / {_num(fs.get('file_create_us_after'), ' µs')}",
            )
        )
    return rows


def canary(r: dict[str, Any]) -> list[Row]:
    rows = []
    targets = r.get("targets") or {}
    for qps, m in (r.get("loadgen") or {}).items():
        if not isinstance(m, dict) or "p95_error_ms" not in m:
            continue
        rows.append(
            Row(
                f"load generator at {qps} QPS: achieved QPS, p95 error",
                f"{m['achieved_qps']}, {m['p95_error_ms']:+.2f} ms",
                f"configured p95 {m['configured_p95_ms']} ms",
                "—",
                f"QPS ±{targets.get('qps_error_pct', 2)}%, p95 ±{targets.get('p95_error_ms', 1)} ms",
                abs(m["qps_error_pct"]) <= targets.get("qps_error_pct", 2)
                and abs(m["p95_error_ms"]) <= targets.get("p95_error_ms", 1),
            )
        )
    for effect, v in (r.get("verdicts") or {}).items():
        rows.append(
            Row(
                f"verdict matrix {effect} (expected {v['expected']}): correct",
                f"{v['correct']:.0%}",
                target="100 %",
                met=v["correct"] >= 1.0,
            )
        )
    return rows


def canary_aa(r: dict[str, Any]) -> list[Row]:
    aa = r.get("aa") or {}
    target = aa.get("target") or {}
    rows = []
    for v in aa.values():
        if not isinstance(v, dict) or "runs" not in v:  # a setting's result, not the target
            continue
        p = v.get("plan") or {}
        setting = f"{p.get('qps'):g} QPS, {p.get('window_sec'):g} s windows"
        setting += f", {p.get('sandbox_median_ms'):g} ms median"
        rows.append(
            Row(
                f"A/A canaries ({setting}): ΔP95 interval covers 0, PASS verdicts",
                f"{v['coverage']:.0%} of {v['runs']}, {v.get('passes', 0)} PASS",
                f"requests resampled, ABAB: {v['peer_coverage']:.0%}",
                "—",
                f"≥ {target.get('coverage', 0.9):.0%}, no PASS",
                bool(v.get("met")),
            )
        )
    return rows


def responder(r: dict[str, Any]) -> list[Row]:
    """Quiet and busy machine side by side (``quiet / busy``) when the result has both columns."""
    quiet, busy = r.get("quiet") or {"summary": r.get("summary") or {}}, r.get("busy") or {}
    sq, sb = quiet.get("summary") or {}, busy.get("summary") or {}
    if not sq:
        return []

    def both(fmt: Callable[[dict[str, Any]], str]) -> str:
        return f"{fmt(sq)} / {fmt(sb)}" if sb else fmt(sq)

    runs = [sq, sb] if sb else [sq]
    label = "quiet / busy machine" if sb else "quiet machine"
    rows = [
        Row(
            f"faults resolved ({sq.get('faults')} over {r.get('repeat')} repeats), {label}",
            both(lambda x: f"{x.get('resolved_rate', 0):.0%}"),
            target="≥ 90 %",
            met=all(x.get("resolved_rate", 0) >= 0.9 for x in runs),
        ),
        Row(
            f"false actions (faults and controls), {label}",
            both(lambda x: str(x.get("false_actions", 0) + x.get("control_actions", 0))),
            target="0",
            met=all(x.get("false_actions", 0) + x.get("control_actions", 0) == 0 for x in runs),
        ),
        Row(
            f"median time to detect, {label}",
            both(lambda x: _num(x.get("median_mttd_s"), " s")),
            f"poll interval {r.get('poll_interval_s')} s",
        ),
        Row(
            f"median (max) time to resolve, {label}",
            both(lambda x: f"{_num(x.get('median_mttr_s'), ' s')} ({_num(x.get('max_mttr_s'), ' s')})"),
            target="≤ 30 s",
            met=all((x.get("max_mttr_s") or 99) <= 30 for x in runs),
        ),
    ]
    oq, ob = quiet.get("outside_summary") or {}, busy.get("outside_summary") or {}
    if oq.get("drills"):
        outs = [o for o in (oq, ob) if o.get("drills")]

        def pair(fmt: Callable[[dict[str, Any]], str]) -> str:
            return " / ".join(fmt(o) for o in outs)

        def mid(o: dict[str, Any], key: str) -> str:
            return _num(_g(o, key, "median"), " s")

        rows += [
            Row(
                f"faults from outside the chaos server ({oq['drills']}): named right, ended right, {label}",
                pair(lambda o: f"{o['diagnosis_correct']}, {o['outcome_correct']}"),
                target="all",
                met=all(o["diagnosis_correct"] == o["outcome_correct"] == o["drills"] for o in outs),
            ),
            Row(
                f"faults from outside: incidents beyond one per fault, {label}",
                pair(lambda o: str(o["extra_incidents"])),
                target="0",
                met=all(o["extra_incidents"] == 0 for o in outs),
            ),
            Row(
                f"faults from outside: median time to detect, to resolve, {label}",
                pair(lambda o: f"{mid(o, 'median_mttd_s')}, {mid(o, 'median_mttr_s')}"),
                f"poll interval {r.get('poll_interval_s')} s",
            ),
        ]
    return rows


def responder_beside(r: dict[str, Any]) -> list[Row]:
    """The suite's faults with something running beside each (``sandbox.beside``), quiet and busy."""
    rows = []
    for name, row in (r.get("beside_faults") or {}).items():
        s = row.get("summary") or {}
        if not s:
            continue
        false = s.get("false_actions", 0) + s.get("control_actions", 0)
        rows.append(
            Row(
                f"faults resolved with {name.replace('/', ' beside, machine ')}; false actions",
                f"{s.get('resolved_rate', 0):.0%}; {false}",
                f"median time to resolve {_num(s.get('median_mttr_s'), ' s')}",
                target="≥ 90 %; 0",
                met=s.get("resolved_rate", 0) >= 0.9 and false == 0,
            )
        )
    return rows


def autoops(r: dict[str, Any]) -> list[Row]:
    ts, dqn = _g(r, "policies", "thompson"), _g(r, "policies", "dqn")
    if not ts:
        return []
    rows = [
        Row(
            "optimizer success rate over builds 1–200 (median of seeds)",
            f"{_g(ts, 'success_1_200', 'median'):.1%}",
            f"the seed's DQN {_g(dqn, 'success_1_200', 'median'):.1%}" if dqn else "—",
            _ratio(_g(ts, "success_1_200", "median"), _g(dqn, "success_1_200", "median")),
            "≥ DQN",
            _g(r, "targets", "bandit_success_1_200_ge_dqn", "met"),
        )
    ]
    cpu = _g(r, "targets", "bandit_cpu_le_dqn_over_100")
    if cpu:
        rows.append(
            Row(
                "optimizer CPU for 1,000 builds",
                _num(cpu["bandit_s"], " s", 3),
                f"DQN {_num(cpu['dqn_s'], ' s', 2)}",
                f"1/{cpu['ratio']}",
                "≤ 1/100 of DQN",
                cpu["met"],
            )
        )
    return rows


def soak(r: dict[str, Any]) -> list[Row]:
    rows = []
    for db in ("sqlite", "postgres"):
        s = _g(r, db, "soak")
        if not s:
            continue
        peer = _g(r, db, "peer_8_clients", "runs_per_s")
        rows.append(
            Row(
                f"{db}: {s['clients']} clients for {s['seconds']:.0f} s, runs/s",
                _num(s["runs_per_s"]),
                f"8 clients {_num(peer)}",
                _ratio(s["runs_per_s"], peer),
                "every acknowledged run stored, no 5xx",
                s["acknowledged_missing"] == 0 and not any(k.startswith("5") for k in s["statuses"]),
            )
        )
    return rows


HEADLINES: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "ingest": ingest,
    "overview": overview,
    "ui": ui,
    "soak": soak,
    "rca": rca,
    "rca_eval": rca_eval,
    "lab_overhead": lab_overhead,
    "lab_isolation": lab_isolation,
    "canary": canary,
    "canary_aa": canary_aa,
    "responder": responder,
    "responder_beside": responder_beside,
    "autoops": autoops,
}
