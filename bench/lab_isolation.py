"""What isolation costs per trial: the same no-op harness under every isolation mode, side by side in the
same run, each against the unisolated host run (network ``full``, no sandbox) as its peer and against
the floor, ``xargs -P <concurrency>`` running the same script (measured in every round).

Modes: ``none`` (the trial sandbox: a worker's zygote, each trial in fresh namespaces inside it; the
native zygote, compiled from ``zygote.c``), ``none`` with the Python zygote
(``OPSLAB_LAB_TRIAL_ZYGOTE_NATIVE=false``, where there is no C compiler), ``none`` with a sandbox per
trial (``OPSLAB_LAB_TRIAL_ZYGOTE=false``: a bubblewrap per trial, as before the zygote),
``allowlist_enforced`` (a sandbox per trial, the bridge and the runner's egress proxy), and
the sandbox over a busybox root filesystem with network ``none``; the peer runs on the host without
capabilities. Reports wall time per trial, the cost over the peer in ms per trial and the ratios to the
peer and to xargs, and the CPU time per trial (the machine's busy time over the run: the runner, its
sandboxes and the kernel's work for them), which a busy machine disturbs. The default mode's ratio is
also split into the run's fixed cost (a run of one trial: start-up, the workers' zygotes, the analysis)
and what each further trial adds, beside ``xargs``'s per trial (``split``). ``filesystem`` is the CPU a
file creation takes where the runs are, before and after (``inode_probe``): a run creates a dozen inodes
a trial where ``xargs`` creates none after its first round, so a file system that allocates them slowly
moves the ratio more than anything the runner does (ext4 without a journal skips every inode deleted in
the last minutes, each at the cost of a buffer lookup: after a mass deletion one creation took
200-350 µs here instead of 20-30). ``--reference-ms``
(default: host_none as measured before the sandbox, 7.1 ms) and ``--budget`` (2.0) say whether
host_none stays within budget × reference per trial.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import OPSLAB, write_result

NOOP = """#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in --output) OUT="$2"; shift 2;; *) shift;; esac; done
printf '{"outcome": "success"}' > "$OUT"
"""
# host_none per trial before the sandbox (bench/results/lab_isolation-20261124.json), and the most the
# sandbox may cost over it.
REFERENCE_HOST_NONE_MS, BUDGET = 7.1, 2.0
MODES: dict[str, dict[str, Any]] = {
    "host_full (peer)": {"network": "full"},
    "host_none": {"network": "none"},
    "host_none_python_zygote": {"network": "none", "env": {"OPSLAB_LAB_TRIAL_ZYGOTE_NATIVE": "false"}},
    "host_none_sandbox_per_trial": {"network": "none", "env": {"OPSLAB_LAB_TRIAL_ZYGOTE": "false"}},
    "host_allowlist": {"network": "allowlist_enforced", "allowed_hosts": ["example.invalid"]},
    "rootfs_none": {"network": "none", "image": "image"},
}


def busybox_rootfs(root: Path) -> bool:
    busybox = shutil.which("busybox")
    if not busybox:
        return False
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in ("sh", "printf"):
        (root / "bin" / applet).symlink_to("busybox")
    return True


def project(root: Path, trials: int, mode: dict[str, Any]) -> Path:
    proj = root / "proj"
    (proj / ".lab").mkdir(parents=True)
    (proj / "data").mkdir()
    (proj / "noop.sh").write_text(NOOP)
    (proj / "data" / "tasks.jsonl").write_text(
        "".join(json.dumps({"task_id": f"t{i}"}) + "\n" for i in range(trials))
    )
    runtime: dict[str, Any] = {
        "harness": {"command": ["sh", "./noop.sh"]},
        "network": {"mode": mode["network"], "allowed_hosts": mode.get("allowed_hosts", [])},
    }
    if "image" in mode:
        if not busybox_rootfs(proj / "image"):
            raise SystemExit("busybox is needed for the rootfs mode")
        runtime["sandbox"] = {"image": "image"}
    experiment = {
        "experiment": {"id": "isolation", "name": "isolation"},
        "dataset": {"path": "../data/tasks.jsonl"},
        "design": {"replications": 1, "random_seed": 1},
        "runtime": runtime,
        "variants": {"baseline": {"id": "only", "bindings": {}}},
    }
    (proj / ".lab" / "experiment.yaml").write_text(json.dumps(experiment))
    return proj


PROBE_FILES = 300


def inode_probe(parent: Path) -> float:
    """CPU microseconds per file created (empty, then closed) in a new folder under ``parent``: what this
    file system charges for an inode here, now."""
    folder = Path(tempfile.mkdtemp(prefix="inode-probe-", dir=parent))
    start = time.process_time()
    for i in range(PROBE_FILES):
        os.close(os.open(folder / f"f{i}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    return round(1e6 * (time.process_time() - start) / PROBE_FILES, 1)


# Above this a file system is allocating inodes far slower than a quiet ext4 does (~20-40 µs).
SLOW_FILE_US = 100.0


def slow_filesystem(before_us: float, after_us: float) -> str | None:
    """What to tell whoever reads the figures when a file creation cost more than ``SLOW_FILE_US``."""
    worst = max(before_us, after_us)
    if worst <= SLOW_FILE_US:
        return None
    return (
        f"a file creation where the runs are cost {worst:.0f} µs of CPU (~20-40 on a quiet ext4): this "
        "file system is allocating inodes slowly (ext4 without a journal for minutes after a mass "
        "deletion nearby), and every lab figure here reads high with it"
    )


def busy_cpu_s() -> float:
    """CPU seconds this machine has spent busy so far (every process and the kernel's own threads), from
    ``/proc/stat``; elsewhere this process's reaped descendants'. A sandboxed trial is reaped by its
    worker's zygote, whose sandbox outlives the runner's wait: only the machine's count has them all, and
    the kernel's work of making and tearing down their namespaces (on a quiet machine, the run's own)."""
    try:
        with open("/proc/stat") as f:  # noqa: PTH123
            ticks = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime
    user, nice, system, _idle, _iowait, irq, softirq = ticks[:7]  # steal: the hypervisor's, not ours
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def one(root: Path, trials: int, concurrency: int, mode: dict[str, Any]) -> tuple[float, float]:
    """Wall seconds and busy CPU seconds (``busy_cpu_s``) of one run."""
    proj = project(root, trials, mode)
    before = busy_cpu_s()
    start = time.perf_counter()
    out = subprocess.run(
        [
            OPSLAB,
            "lab",
            "run",
            ".lab/experiment.yaml",
            "--concurrency",
            str(concurrency),
            *(["--container"] if "image" in mode else []),
            "--json",
        ],
        cwd=proj,
        capture_output=True,
        text=True,
        env={**os.environ, **mode.get("env", {})},
    )
    wall = time.perf_counter() - start
    cpu = busy_cpu_s() - before
    run = json.loads(out.stdout)
    if not run.get("ok") or run["run"]["outcomes"] != {"success": trials}:
        raise SystemExit(f"{mode}: {out.stdout[-500:]} {out.stderr[-500:]}")
    return wall, cpu


def floor(root: Path, trials: int, concurrency: int) -> tuple[float, float]:
    """Wall seconds and busy CPU seconds of ``xargs -P concurrency`` running the harness once per trial."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "noop.sh").write_text(NOOP)
    before = busy_cpu_s()
    start = time.perf_counter()
    script = f"/bin/sh {root}/noop.sh --input x --output {root}/o{{}}.json"
    subprocess.run(
        f"seq {trials} | xargs -P {concurrency} -I{{}} {script}",
        shell=True,  # noqa: S602 - the floor is xargs itself
        check=True,
    )
    return time.perf_counter() - start, busy_cpu_s() - before


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="Rounds over every mode; medians are reported.")
    ap.add_argument("--reference-ms", type=float, default=REFERENCE_HOST_NONE_MS)
    ap.add_argument("--budget", type=float, default=BUDGET)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="opslab-bench-iso-"))
    probe_before = inode_probe(root)
    walls: dict[str, list[float]] = {name: [] for name in MODES}
    cpus: dict[str, list[float]] = {name: [] for name in MODES}
    floors: list[float] = []
    floor_cpus: list[float] = []
    single: list[float] = []  # host_none with one trial: the run's fixed cost
    for r in range(args.repeat):
        floor_wall, floor_cpu = floor(root / f"r{r}_xargs", args.trials, args.concurrency)
        floors.append(floor_wall)
        floor_cpus.append(floor_cpu)
        single.append(one(root / f"r{r}_single", 1, args.concurrency, MODES["host_none"])[0])
        for i, (name, mode) in enumerate(MODES.items()):
            wall, cpu = one(root / f"r{r}_{i}", args.trials, args.concurrency, mode)
            walls[name].append(wall)
            cpus[name].append(cpu)
    probe_after = inode_probe(root)
    filesystem = {
        "where": str(root),
        "file_create_us_before": probe_before,
        "file_create_us_after": probe_after,
        "note": "CPU per file created where the runs are (see inode_probe); ~20-40 us on a quiet ext4",
    }
    if (warning := slow_filesystem(probe_before, probe_after)) is not None:
        filesystem["warning"] = warning
        print(f"lab_isolation: {warning}", file=sys.stderr)
    xargs_s = statistics.median(floors)
    peer = statistics.median(walls["host_full (peer)"])
    peer_cpu = statistics.median(cpus["host_full (peer)"])
    modes = {}
    for name, values in walls.items():
        wall, cpu = statistics.median(values), statistics.median(cpus[name])
        modes[name] = {
            "wall_s": round(wall, 3),
            "per_trial_ms": round(1000 * wall / args.trials, 2),
            "over_peer_ms_per_trial": round(1000 * (wall - peer) / args.trials, 2),
            "ratio_to_peer": round(wall / peer, 2),
            "ratio_to_xargs": round(wall / xargs_s, 2),
            "cpu_ms_per_trial": round(1000 * cpu / args.trials, 2),
            "cpu_ratio_to_peer": round(cpu / peer_cpu, 2),
        }
    host_none = modes["host_none"]["per_trial_ms"]
    budget = {
        "reference_host_none_ms": args.reference_ms,
        "limit_ms": round(args.budget * args.reference_ms, 2),
        "host_none_ms": host_none,
        "met": host_none <= args.budget * args.reference_ms,
    }
    fixed_s = statistics.median(single)
    split = {
        "one_trial_wall_s": round(fixed_s, 3),
        "fixed_share": round(fixed_s / modes["host_none"]["wall_s"], 2),
        "marginal_ms_per_trial": round(
            1000 * (modes["host_none"]["wall_s"] - fixed_s) / max(1, args.trials - 1), 2
        ),
        "xargs_ms_per_trial": round(1000 * xargs_s / args.trials, 2),
    }
    result = {
        "trials": args.trials,
        "concurrency": args.concurrency,
        "floor": {
            "what": f"xargs -P {args.concurrency} of the same harness",
            "wall_s": round(xargs_s, 3),
            "cpu_ms_per_trial": round(1000 * statistics.median(floor_cpus) / args.trials, 2),
        },
        "target": "host_none ratio_to_xargs <= 3 (moonshot 2)",
        "budget": budget,
        "split": split,
        "filesystem": filesystem,
        "modes": modes,
    }
    write_result("lab_isolation", result)


if __name__ == "__main__":
    main()
