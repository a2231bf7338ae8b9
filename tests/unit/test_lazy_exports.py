"""Lazy package exports (``opslab.lazy``): every public name of a lazy package resolves, to the object its
``TYPE_CHECKING`` import names; and what a CLI command or the service loads at start stays free of the
heavy libraries only some work needs (checked in a fresh interpreter)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from types import ModuleType

import pytest

LAZY = ("opslab.store", "opslab.responder", "opslab.canary", "opslab.autoops", "opslab.lab")


@pytest.mark.parametrize("package", LAZY)
def test_every_public_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018 - the attribute access is the test


def test_an_alias_resolves_to_the_name_it_aliases() -> None:
    from opslab.autoops import DQN_HINT
    from opslab.autoops.dqn import HINT

    assert DQN_HINT is HINT


def loaded_after(code: str) -> set[str]:
    """The top-level packages loaded in a fresh interpreter once ``code`` ran."""
    return {m.split(".")[0] for m in loaded_modules(code)}


HEAVY = {"langgraph", "langchain_core", "scipy", "aiohttp", "alembic", "torch", "duckdb"}


def test_the_runtime_and_the_store_load_no_heavy_library() -> None:
    code = "import opslab.runtime, opslab.store, opslab.cli.app\nopslab.cli.app.build_app()"
    assert loaded_after(code) & HEAVY == set()


def test_the_service_loads_none_of_them_before_it_needs_them() -> None:
    assert loaded_after("import opslab.api.app") & HEAVY == set()


def test_running_a_lab_experiment_loads_neither_the_analysis_nor_the_sdk() -> None:
    modules = loaded_modules("import opslab.cli.app\nfrom opslab.lab import run_experiment")
    assert {m.split(".")[0] for m in modules} & (HEAVY | {"numpy"}) == set()
    assert not modules & {"opslab.lab.sdk", "opslab.lab.browse", "opslab.lab.job", "opslab.lab.finish"}


def test_the_analysis_of_success_rates_loads_no_numpy_until_a_statistic_needs_it() -> None:
    rates = "import opslab.lab.finish\nfrom opslab.judge import estimate\nestimate({'t': [1.0, 0.0]}, 'rate')"
    assert "numpy" not in loaded_modules(rates)
    means = "from opslab.judge import estimate\nestimate({'t': [1.0], 'u': [2.5]}, 'mean')"
    assert "numpy" in loaded_modules(means)


def loaded_modules(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(out.stdout))


def test_a_name_its_submodule_shares_is_the_object_not_the_module() -> None:
    from opslab.responder import investigate

    assert callable(investigate) and not isinstance(investigate, ModuleType)
