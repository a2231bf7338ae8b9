"""``ExperimentBuilder``: an experiment written in code, validated by the lab's own config model.

The seed's builder, method for method in snake_case. Paths given to it are relative to the **project
root** (the parent of ``.lab/``), as the seed's SDK says; the YAML it writes follows the config's own
rule (the dataset path is relative to the folder holding the file), so ``to_yaml`` rewrites the dataset
path for the folder the file goes to — ``.lab/`` by default, or whatever ``write(path)`` is given.
The harness command needs no rewriting: it runs from the project root either way.

Nothing is checked until ``build()`` (``to_yaml`` and ``write`` call it): the model in
``opslab.lab.config`` decides, and a bad value is an ``InvalidInput`` naming the field.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Self

import yaml
from pydantic import JsonValue

from opslab.errors import InvalidInput
from opslab.lab.config import (
    ExperimentConfig,
    IntegrationLevel,
    NetworkMode,
    SanitizationProfile,
    WorkloadType,
    parse_config,
    project_root_of,
)

DEFAULT_EXPERIMENT_DIR = ".lab"


class ExperimentBuilder:
    """Build ``.lab/experiment.yaml`` step by step; every setter returns the builder (chainable)."""

    def __init__(self, experiment_id: str, name: str) -> None:
        self._experiment: dict[str, Any] = {"id": experiment_id, "name": name}
        self._dataset: dict[str, Any] = {}
        self._design: dict[str, Any] = {}
        self._harness: dict[str, Any] = {}
        self._sandbox: dict[str, Any] = {}
        self._network: dict[str, Any] = {}
        self._env_allow: list[str] | None = None
        self._baseline: dict[str, Any] | None = None
        self._treatments: list[dict[str, Any]] = []
        self._analysis: dict[str, Any] = {}

    @classmethod
    def create(cls, experiment_id: str, name: str) -> Self:
        return cls(experiment_id, name)

    # --- experiment ---
    def description(self, text: str) -> Self:
        self._experiment["description"] = text
        return self

    def workload_type(self, kind: WorkloadType) -> Self:
        self._experiment["workload_type"] = kind
        return self

    # --- dataset ---
    def dataset_jsonl(
        self,
        path: str | Path,
        *,
        suite_id: str | None = None,
        split_id: str | None = None,
        limit: int | None = None,
    ) -> Self:
        """The tasks: JSON Lines, a ``task_id`` on each; ``path`` relative to the project root."""
        self._dataset = {"path": str(path)}
        for key, value in (("suite_id", suite_id), ("split_id", split_id), ("limit", limit)):
            if value is not None:
                self._dataset[key] = value
        return self

    # --- harness ---
    def harness_cli(self, argv: Sequence[str], *, integration_level: IntegrationLevel | None = None) -> Self:
        """Your program, run once per trial from the project root (``["python3", "./harness.py"]``)."""
        self._harness = {"command": list(argv)}
        if integration_level is not None:
            self._harness["integration_level"] = integration_level
        return self

    # --- design ---
    def sanitization_profile(self, profile: SanitizationProfile) -> Self:
        self._design["sanitization_profile"] = profile
        return self

    def replications(self, n: int) -> Self:
        self._design["replications"] = n
        return self

    def random_seed(self, seed: int) -> Self:
        self._design["random_seed"] = seed
        return self

    def trial_timeout(self, seconds: float) -> Self:
        self._design["trial_timeout_s"] = seconds
        return self

    # --- variants ---
    def baseline(self, variant_id: str, bindings: Mapping[str, JsonValue] | None = None) -> Self:
        self._baseline = {"id": variant_id, "bindings": dict(bindings or {})}
        return self

    def add_variant(self, variant_id: str, bindings: Mapping[str, JsonValue] | None = None) -> Self:
        self._treatments.append({"id": variant_id, "bindings": dict(bindings or {})})
        return self

    # --- analysis ---
    def primary_metrics(self, metrics: Sequence[str]) -> Self:
        self._analysis["primary_metrics"] = list(metrics)
        return self

    def secondary_metrics(self, metrics: Sequence[str]) -> Self:
        self._analysis["secondary_metrics"] = list(metrics)
        return self

    def metric_kinds(self, kinds: Mapping[str, Literal["rate", "fraction", "mean"]]) -> Self:
        """What a metric is when its values cannot say (``fraction``: a share in [0, 1], never inferred)."""
        self._analysis["metric_kinds"] = dict(kinds)
        return self

    # --- isolation ---
    def network_mode(self, mode: NetworkMode, allowed_hosts: Sequence[str] | None = None) -> Self:
        """``none`` (the default, strictest), ``full``, or ``allowlist_enforced`` with ``allowed_hosts``."""
        self._network = {"mode": mode, "allowed_hosts": list(allowed_hosts or [])}
        return self

    def sandbox_image(self, image: str | None) -> Self:
        self._sandbox = {"image": image}
        return self

    def env_allow(self, names: Sequence[str]) -> Self:
        """Variables passed to the harness whatever the sanitization profile (never written out)."""
        self._env_allow = list(names)
        return self

    # --- output ---
    def to_dict(self, *, experiment_dir: str | Path = DEFAULT_EXPERIMENT_DIR) -> dict[str, Any]:
        """The config as a mapping, unvalidated; the dataset path made relative to ``experiment_dir`` (the
        folder the YAML goes to, relative to the project root)."""
        dataset = dict(self._dataset)
        if "path" in dataset:
            dataset["path"] = relative_to_file(dataset["path"], experiment_dir)
        runtime: dict[str, Any] = {"harness": dict(self._harness)}
        if self._sandbox:
            runtime["sandbox"] = dict(self._sandbox)
        if self._network:
            runtime["network"] = dict(self._network)
        if self._env_allow is not None:
            runtime["env_allow"] = list(self._env_allow)
        variants: dict[str, Any] = {"treatments": [dict(t) for t in self._treatments]}
        if self._baseline is not None:
            variants["baseline"] = dict(self._baseline)
        data: dict[str, Any] = {
            "experiment": dict(self._experiment),
            "dataset": dataset,
            "design": dict(self._design),
            "runtime": runtime,
            "variants": variants,
            "analysis": dict(self._analysis),
        }
        return data

    def build(self, *, experiment_dir: str | Path = DEFAULT_EXPERIMENT_DIR) -> ExperimentConfig:
        """The validated config; ``InvalidInput`` naming the offending field (``design.replications`` …)."""
        missing = [
            (field, message)
            for field, message, absent in (
                ("dataset.path", "call dataset_jsonl(path) first", not self._dataset),
                ("runtime.harness.command", "call harness_cli(argv) first", not self._harness),
                ("variants.baseline", "call baseline(id, bindings) first", self._baseline is None),
            )
            if absent
        ]
        if missing:
            raise InvalidInput.for_fields([{"field": f, "message": m} for f, m in missing])
        return parse_config(self.to_dict(experiment_dir=experiment_dir))

    def to_yaml(self, *, experiment_dir: str | Path = DEFAULT_EXPERIMENT_DIR) -> str:
        """The validated config as YAML, for a file in ``experiment_dir`` (default ``.lab/``)."""
        config = self.build(experiment_dir=experiment_dir)
        return yaml.safe_dump(
            config.model_dump(mode="json"), sort_keys=False, allow_unicode=True, default_flow_style=False
        )

    def write(self, path: str | Path) -> Path:
        """Write the YAML to ``path`` (its folders made), the dataset path adjusted to where it lands:
        the project root is the parent of ``.lab/``, or the file's own folder elsewhere."""
        target = Path(path)
        folder = target.resolve().parent
        experiment_dir = os.path.relpath(folder, project_root_of(target))
        text = self.to_yaml(experiment_dir=experiment_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target


def relative_to_file(path: str, experiment_dir: str | Path) -> str:
    """A project-root-relative ``path`` as seen from ``experiment_dir`` (also project-root-relative):
    ``data/t.jsonl`` from ``.lab`` is ``../data/t.jsonl``. Absolute paths stay as they are."""
    if Path(path).is_absolute():
        return path
    if Path(experiment_dir).is_absolute():
        raise InvalidInput.for_field("experiment_dir", f"relative to the project root, got {experiment_dir}")
    start = posixpath.normpath(PurePosixPath(experiment_dir).as_posix())
    return posixpath.relpath(posixpath.normpath(PurePosixPath(path).as_posix()), start)
