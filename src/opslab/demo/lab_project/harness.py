"""An example harness: 'solves' arithmetic word problems with a toy strategy chosen by the variant.

The runner calls it once per trial:  python3 harness.py --input trial_input.json --output trial_output.json
Read the task and the variant's bindings from the input; write the outcome and metrics to the output.
"""

import argparse
import json
import random
import time
from pathlib import Path


def solve(question: dict[str, object], strategy: str, rng: random.Random) -> int:
    a, b, op = int(str(question["a"])), int(str(question["b"])), str(question["op"])
    exact = {"+": a + b, "-": a - b, "*": a * b}[op]
    if strategy == "careful":
        return exact
    # "hasty" gets multiplication wrong now and then: the kind of regression an A/B run should catch
    return exact + (1 if op == "*" and rng.random() < 0.5 else 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    trial = json.loads(Path(args.input).read_text())
    rng = random.Random(trial["seed"])
    start = time.perf_counter()
    answer = solve(trial["task"], trial["bindings"]["strategy"], rng)
    correct = answer == trial["task"]["expected"]
    output = {
        "outcome": "success" if correct else "failure",
        "metrics": {"accuracy": 1.0 if correct else 0.0, "latency_ms": (time.perf_counter() - start) * 1000},
        "result": {"answer": answer},
    }
    Path(args.output).write_text(json.dumps(output))


if __name__ == "__main__":
    main()
