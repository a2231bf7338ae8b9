"""Whether the settings could set a variable, told without building them (``opslab.config_sources``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opslab.config import Settings
from opslab.config_sources import may_be_set


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No OPSLAB_* variable and no .env file: run from an empty folder."""
    for name in list(os.environ):
        if name.upper().startswith("OPSLAB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_nothing_can_set_it_and_the_settings_agree(bare: Path) -> None:
    assert not may_be_set("OPSLAB_URL")
    assert Settings.load().url is None


def test_the_environment_sets_it_in_any_case(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("opslab_url", "http://127.0.0.1:9")
    assert may_be_set("OPSLAB_URL")
    assert Settings.load().url == "http://127.0.0.1:9"


@pytest.mark.parametrize("named", [False, True])
def test_a_dot_env_file_may_set_it(bare: Path, monkeypatch: pytest.MonkeyPatch, named: bool) -> None:
    env = bare / ("settings.env" if named else ".env")
    env.write_text("OPSLAB_URL=http://127.0.0.1:9\n")
    if named:
        monkeypatch.setenv("OPSLAB_ENV_FILE", str(env))
    assert may_be_set("OPSLAB_URL")
    assert Settings.load().url == "http://127.0.0.1:9"
