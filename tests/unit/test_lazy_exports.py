"""Lazy package exports (``opslab.lazy``): every public name of a lazy package resolves, to the object its
``TYPE_CHECKING`` import names; and what a CLI command or the service loads at start stays free of the
heavy libraries only some work needs (checked in a fresh interpreter)."""

from __future__ import annotations

import builtins
import importlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from opslab.lazy import lazy_module

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


def test_a_lazy_module_waits_for_another_threads_import_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The analysis reading ``np.asarray`` while the prefetch thread still imports NumPy got a half-made
    module ("partially initialized module 'numpy' has no attribute 'asarray'")."""
    started, release = threading.Event(), threading.Event()
    monkeypatch.setattr(builtins, "_opslab_slow_started", started, raising=False)
    monkeypatch.setattr(builtins, "_opslab_slow_release", release, raising=False)
    (tmp_path / "opslab_slow_module.py").write_text(
        "import builtins\n"
        "builtins._opslab_slow_started.set()\n"
        "builtins._opslab_slow_release.wait(30)\n"
        "value = 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "opslab_slow_module", raising=False)
    importer = threading.Thread(target=importlib.import_module, args=("opslab_slow_module",))
    importer.start()
    assert started.wait(30)
    seen: list[object] = []
    reader = threading.Thread(target=lambda: seen.append(lazy_module("opslab_slow_module").value))
    reader.start()
    # Released once the reader waits for the import (or, wrongly, has already finished without it).
    deadline = time.monotonic() + 30
    while reader.is_alive() and not _waits_in_the_import_system(reader) and time.monotonic() < deadline:
        reader.join(0.01)
    release.set()
    reader.join(30)
    importer.join(30)
    assert seen == [42]


def _waits_in_the_import_system(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_filename == "<frozen importlib._bootstrap>" and "acquire" in frame.f_code.co_name:
            return True
        frame = frame.f_back
    return False
