"""``docs/performance.md`` from the newest result of every benchmark: for each, its headline figures
beside the floor or peer measured in the same run, their ratio, the target and whether it is met, and the
machine it ran on. ``python -m bench.performance`` rewrites the page; ``python -m bench`` runs the suite
first."""

from __future__ import annotations

import json
from typing import Any

from bench._common import RESULTS, ROOT
from bench.headlines import HEADLINES

PAGE = ROOT / "docs" / "performance.md"


def newest(name: str) -> dict[str, Any] | None:
    found = sorted(RESULTS.glob(f"{name}-[0-9]*.json"))
    return json.loads(found[-1].read_text()) if found else None


def render() -> str:
    lines = [
        "# Performance",
        "",
        "Each figure stands beside the floor or peer its benchmark measured in the same run on the same",
        "machine (a dash where the figure is an absolute target: a latency bound, an accuracy, a count).",
        "`make bench` runs them all (about half an hour here) and rewrites this page from the newest result",
        "of each (`bench/results/<name>-<date>.json`); `python -m bench.<name>` runs one.",
        "",
        "| benchmark | figure | value | floor or peer | ratio | target | met | date, machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, headline in HEADLINES.items():
        result = newest(name)
        if result is None:
            lines.append(f"| {name} | not run yet | | | | | | |")
            continue
        m = result.get("machine") or {}
        model = f" ({m['cpu_model']})" if m.get("cpu_model") else ""
        where = (
            f"{str(result.get('date', ''))[:10]}, {m.get('cpus', '?')} CPUs{model}, "
            f"Python {m.get('python', '?')}"
        )
        for row in headline(result):
            met = "—" if row.met is None else "yes" if row.met else "**no**"
            cells = (name, row.figure, row.value, row.peer, row.ratio, row.target, met, where)
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Details, method and caveats: each benchmark's docstring (`bench/<name>.py`) and its capability's",
        "page in `docs/`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    PAGE.write_text(render())
    print(f"wrote {PAGE.relative_to(ROOT)}")  # noqa: T201


if __name__ == "__main__":
    main()
