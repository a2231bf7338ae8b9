"""Root-cause localisation on AgentRx's annotated τ-bench and Magentic-One failures (`opslab rca eval`)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench._common import OPSLAB, ROOT, write_result

DATA = ROOT.parent / "shared" / "datasets" / "agentrx"
SETS = {
    "tau-bench": (
        DATA / "tau_retail" / "tau_dataset_failed.json",
        DATA / "ground_truth" / "tau_ground_truth.json",
    ),
    "magentic": (DATA / "magentic_dataset", DATA / "ground_truth" / "magentic_one_ground_truth.json"),
}


def main() -> None:
    result: dict[str, Any] = {"method": "deterministic rules, no LLM; see docs/rca.md"}
    for fmt, (path, truth) in SETS.items():
        out = subprocess.run(
            [OPSLAB, "rca", "eval", "--format", fmt, "--ground-truth", str(truth), str(path), "--json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
        result[fmt] = json.loads(out)
    write_result("rca_eval", result)


if __name__ == "__main__":
    main()
