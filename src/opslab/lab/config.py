"""`.lab/experiment.yaml`: the experiment contract, its validation and its pathing rules.

Pathing (the seed's): the project root is the parent of `.lab/` (or the experiment file's folder when
it is not inside `.lab/`); the harness command runs from the project root and its script path resolves
against it; the dataset path resolves against the folder holding `experiment.yaml`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opslab.egress import parse_allowlist
from opslab.errors import InvalidInput, invalid_from_pydantic

CONFIG_SCHEMA_VERSION = 1
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# PyYAML's safe loader on libyaml where the wheel has it (the same documents, a sixth of the time).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NetworkMode = Literal["none", "allowlist_enforced", "full"]
IntegrationLevel = Literal["cli_basic", "cli_events", "otel", "sdk_control", "sdk_full"]
WorkloadType = Literal["agent_harness", "trainer"]
SanitizationProfile = Literal["hermetic_functional_v2", "passthrough"]


class _M(BaseModel):
    # Built when first used, not as the module is imported: a run's start-up waits for the one schema it
    # validates (``Resolved``, the experiment whole), not for each part's own (~30 ms of every command).
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ExperimentMeta(_M):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1)
    description: str = ""
    workload_type: WorkloadType = "agent_harness"


class DatasetSpec(_M):
    path: str = Field(min_length=1)
    suite_id: str = "default"
    split_id: str = "dev"
    limit: int | None = Field(default=None, ge=1)


class Design(_M):
    replications: int = Field(default=1, ge=1, le=10_000)
    random_seed: int = 0
    sanitization_profile: SanitizationProfile = "hermetic_functional_v2"
    trial_timeout_s: float = Field(default=600.0, gt=0, description="Per-trial wall-clock limit.")


class Harness(_M):
    command: list[str] = Field(min_length=1)
    integration_level: IntegrationLevel = "cli_basic"

    @field_validator("command")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v[0].strip():
            raise ValueError("the first element must name a program")
        return v


class Sandbox(_M):
    image: str | None = None
    # Host paths a local sandboxed trial (network none / allowlist_enforced) also sees, read-only: a
    # model cache, a toolchain outside the harness's own installation.
    read_only: list[str] = Field(default_factory=list)
    pids_limit: int = Field(
        default=1024, ge=0, le=1_000_000, description="Tasks a sandboxed trial may run at once (0: no limit)."
    )

    @field_validator("pids_limit")
    @classmethod
    def _enough(cls, v: int) -> int:
        if 0 < v < 16:
            raise ValueError("at least 16 (the sandbox itself takes a few), or 0 for no limit")
        return v

    @field_validator("read_only")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if not p.startswith("/") or p.rstrip("/") == "" or "\0" in p]
        if bad:
            raise ValueError(f"expected absolute paths other than /, got {bad}")
        return v


class Limits(_M):
    """What each trial may take (docs/lab.md#limits). Memory, CPU and pids are enforced by a cgroup where
    the runner may make one (root, a ``pids``/``memory`` hierarchy), else by ``RLIMIT_*`` where one
    applies; the file caps by the runner as it reads (and keeps) what the trial left."""

    memory_mb: int | None = Field(
        default=None, ge=16, description="Memory of the trial's processes together (None: no limit)."
    )
    cpu_s: float | None = Field(
        default=None, gt=0, description="CPU seconds of each process (RLIMIT_CPU; None: no limit)."
    )
    pids: int | None = Field(
        default=None,
        ge=0,
        description="Tasks the trial may run at once (0: none; None: runtime.sandbox.pids_limit, 1024).",
    )
    tmp_mb: int = Field(default=1024, ge=1, description="Size of a sandboxed trial's private /tmp.")
    workspace_mb: int | None = Field(
        default=None,
        ge=1,
        description="Largest file a trial may write (RLIMIT_FSIZE), and its workspace's size once it "
        "ended: a trial over it errors (None: no limit).",
    )
    output_mb: int = Field(default=64, ge=1, description="Largest trial_output.json the runner reads.")
    events_mb: int = Field(default=64, ge=1, description="Most of an events file the runner reads.")
    log_keep_mb: int = Field(
        default=1, ge=1, description="Of stdout and stderr each: the first and last this many MiB are kept."
    )


class Network(_M):
    mode: NetworkMode = "none"
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("allowed_hosts")
    @classmethod
    def _rules(cls, v: list[str]) -> list[str]:
        parse_allowlist(v)  # ValueError names the entry and what is wrong with it
        return v


class RuntimeSpec(_M):
    harness: Harness
    sandbox: Sandbox = Field(default_factory=Sandbox)
    network: Network = Field(default_factory=Network)
    limits: Limits = Field(default_factory=Limits)
    # Variables passed to the harness from the runner's environment whatever the sanitization profile
    # (an API key): their values are never written to artifacts, bundles or logs.
    env_allow: list[str] = Field(default_factory=list)

    @field_validator("env_allow")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not ENV_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"not environment variable names: {bad}")
        return v


class Variant(_M):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    bindings: dict[str, Any] = Field(default_factory=dict)


class Variants(_M):
    baseline: Variant
    treatments: list[Variant] = Field(default_factory=list)

    def all(self) -> list[Variant]:
        return [self.baseline, *self.treatments]


MetricKind = Literal["rate", "fraction", "mean"]


class Analysis(_M):
    primary_metrics: list[str] = Field(default_factory=lambda: ["success"])
    secondary_metrics: list[str] = Field(default_factory=list)
    # What a metric is, when its values cannot say: a fraction (a share in [0, 1]) is only ever declared.
    metric_kinds: dict[str, MetricKind] = Field(default_factory=dict)

    @field_validator("metric_kinds")
    @classmethod
    def _success_is_a_rate(cls, kinds: dict[str, MetricKind]) -> dict[str, MetricKind]:
        if kinds.get("success", "rate") != "rate":
            raise ValueError("success is always a rate (1 when the outcome is success)")
        if any(not name.strip() for name in kinds):
            raise ValueError("a metric name is empty")
        return kinds


class ExperimentConfig(_M):
    experiment: ExperimentMeta
    dataset: DatasetSpec
    design: Design = Field(default_factory=Design)
    runtime: RuntimeSpec
    variants: Variants
    analysis: Analysis = Field(default_factory=Analysis)

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, v: Variants) -> Variants:
        ids = [x.id for x in v.all()]
        if len(set(ids)) != len(ids):
            raise ValueError(f"variant ids must be unique, got {ids}")
        return v


class Resolved(BaseModel):
    """A validated config plus the paths it resolves to."""

    model_config = ConfigDict(defer_build=True)

    config: ExperimentConfig
    experiment_path: Path
    project_root: Path
    dataset_path: Path
    tasks: list[dict[str, Any]]

    @property
    def lab_dir(self) -> Path:
        return self.project_root / ".lab"


def project_root_of(experiment_path: Path) -> Path:
    parent = experiment_path.resolve().parent
    return parent.parent if parent.name == ".lab" else parent


def parse_config(data: Any) -> ExperimentConfig:
    if not isinstance(data, dict):
        raise InvalidInput.for_field("experiment", "expected a YAML mapping at the top level")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_pydantic(list(exc.errors(include_url=False))) from None


def read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise InvalidInput.for_field("EXPERIMENT", f"{path}: no such file")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput.for_field("EXPERIMENT", f"{path}: not valid YAML: {exc}") from None


def load_tasks(path: Path, limit: int | None) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InvalidInput.for_field("dataset.path", f"{path}: no such file")
    tasks: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            task = json.loads(line)
        except ValueError as exc:
            raise InvalidInput.for_field("dataset.path", f"{path.name} line {n}: not JSON: {exc}") from None
        if not isinstance(task, dict) or not isinstance(task.get("task_id"), str | int):
            raise InvalidInput.for_field("dataset.path", f"{path.name} line {n}: each task needs a task_id")
        tid = str(task["task_id"])
        if tid in seen:
            raise InvalidInput.for_field("dataset.path", f"{path.name} line {n}: task_id {tid!r} repeats")
        seen.add(tid)
        tasks.append(task)
        if limit and len(tasks) >= limit:
            break
    if not tasks:
        raise InvalidInput.for_field("dataset.path", f"{path}: no tasks")
    return tasks


def resolve(experiment_path: Path, data: Any | None = None, *, require_tasks: bool = True) -> Resolved:
    """The experiment with its paths resolved and its tasks loaded. ``require_tasks=False`` (describe's
    pre-flight) resolves an experiment whose dataset is missing or unreadable with no tasks; every run
    refuses it, naming ``dataset.path``."""
    config = parse_config(read_yaml(experiment_path) if data is None else data)
    root = project_root_of(experiment_path)
    dataset = (experiment_path.resolve().parent / config.dataset.path).resolve()
    try:
        tasks = load_tasks(dataset, config.dataset.limit)
    except InvalidInput:
        if require_tasks:
            raise
        tasks = []
    return Resolved(
        config=config,
        experiment_path=experiment_path.resolve(),
        project_root=root,
        dataset_path=dataset,
        tasks=tasks,
    )


SKELETON = """\
# opslab lab experiment. Fill in every field marked REQUIRED, then: opslab lab describe .lab/experiment.yaml
experiment:
  id: my_experiment                 # REQUIRED: letters, digits, _ . -
  name: My experiment               # REQUIRED
  description: ""
  workload_type: agent_harness      # agent_harness | trainer
dataset:
  path: ../data/tasks.jsonl         # REQUIRED: JSONL, one task per line with a task_id; relative to this file
  suite_id: default
  split_id: dev
  limit: null                       # run only the first N tasks
design:
  replications: 1                   # REQUIRED: trials per (variant, task)
  random_seed: 42                   # REQUIRED: each trial's seed derives from it
  sanitization_profile: hermetic_functional_v2   # hermetic_functional_v2 | passthrough
  trial_timeout_s: 600
runtime:
  harness:
    command: [python3, ./harness.py]   # REQUIRED: your program, run from the project root
    integration_level: cli_basic       # cli_basic | cli_events | otel | sdk_control | sdk_full
  sandbox:
    image: null                        # a root filesystem (directory or exported tarball), or an image
                                       # for podman/docker; null: trials run on the host
  network:
    mode: none                         # none | allowlist_enforced | full (enforced: see docs/lab.md)
    allowed_hosts: []                  # allowlist_enforced: host, host:port or *.domain
  limits:                              # each trial's (docs/lab.md#limits); null: no limit
    memory_mb: null                    # the trial's processes together
    cpu_s: null                        # CPU seconds of each process
    tmp_mb: 1024                       # a sandboxed trial's private /tmp
    workspace_mb: null                 # the largest file it writes, and its workspace once it ended
    output_mb: 64                      # the most of trial_output.json and of an events file read
    events_mb: 64
    log_keep_mb: 1                     # stdout and stderr each: the first and last MiBs are kept
  env_allow: []                        # e.g. [OPENAI_API_KEY]: passed to the harness, never written out
variants:
  baseline:
    id: control                        # REQUIRED
    bindings: {}                       # REQUIRED: what your harness reads to behave as this variant
  treatments:
    - id: treatment
      bindings: {}
analysis:
  primary_metrics: [success]
  secondary_metrics: []
  metric_kinds: {}                     # e.g. {accuracy: fraction}: rate | fraction | mean; undeclared,
                                       # 0/1 values are a rate and anything else a mean
"""
