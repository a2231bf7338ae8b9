"""The zygote settings as a run reads them: the defaults without loading the settings when nothing could
set them, and what the environment or a .env file says otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opslab.lab.isolation import plan as isolation_plan


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    for name in ("OPSLAB_ENV_FILE", "OPSLAB_LAB_TRIAL_ZYGOTE", "OPSLAB_LAB_TRIAL_ZYGOTE_NATIVE"):
        monkeypatch.delenv(name, raising=False)
    isolation_plan._zygote_settings.cache_clear()
    yield
    isolation_plan._zygote_settings.cache_clear()


def test_unset_they_are_the_defaults_and_the_settings_are_not_loaded(tmp_path: Path) -> None:
    code = (
        "import sys; from opslab.lab.isolation import plan; "
        "print(plan._zygote_settings(), 'opslab.config' in sys.modules)"
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(True,", "True)", "False"]


def test_the_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("opslab_lab_trial_zygote_native", "false")  # names are read without case
    assert isolation_plan._zygote_settings() == (True, False)


def test_a_dot_env_file_sets_them(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OPSLAB_LAB_TRIAL_ZYGOTE=false\n")
    assert isolation_plan._zygote_settings() == (False, True)
