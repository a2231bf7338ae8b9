"""A ``.env`` file is read as the seeds ship it (``cp .env.example .env``): from the working directory or
``OPSLAB_ENV_FILE``, the environment winning, a seed's empty variable meaning unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from opslab.config import OPENAI_BASE_URL, Settings, seed_aliases
from opslab.errors import InvalidInput

# The seeds' Configuration blocks, word for word (Smart SRE's DATABASE_URL is only parsed here).
SEED_ENV = Path(__file__).resolve().parents[1] / "fixtures" / "seed-env"
SMART_SRE_ENV = (SEED_ENV / "smart-sre.env").read_text()
CONTROL_PLANE_ENV = (SEED_ENV / "control-plane.env").read_text()


@pytest.fixture
def workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory and an environment without any opslab or seed setting."""
    for name in [*seed_aliases(), *(f"OPSLAB_{f.upper()}" for f in Settings.model_fields)]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_dotenv_in_the_working_directory_is_read(workdir: Path) -> None:
    (workdir / ".env").write_text("APP_INGEST_SECRET=dotenv-secret-5f1c9a\n")
    settings = Settings.load()
    assert settings.ingest_secret is not None
    assert settings.ingest_secret.get_secret_value() == "dotenv-secret-5f1c9a"
    assert settings.env_file == (workdir / ".env").resolve()


def test_without_a_dotenv_nothing_is_read(workdir: Path) -> None:
    settings = Settings.load()
    assert settings.env_file is None and settings.ingest_secret is None


def test_the_environment_wins_over_the_dotenv(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / ".env").write_text("APP_INGEST_SECRET=dotenv-secret-5f1c9a\nOPSLAB_JOB_WORKERS=3\n")
    monkeypatch.setenv("OPSLAB_INGEST_SECRET", "from-the-environment-7d2e")
    monkeypatch.setenv("OPSLAB_JOB_WORKERS", "5")
    settings = Settings.load()
    assert settings.ingest_secret is not None
    assert settings.ingest_secret.get_secret_value() == "from-the-environment-7d2e"
    assert settings.job_workers == 5


def test_opslab_env_file_names_another_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / ".env").write_text("OPSLAB_JOB_WORKERS=3\n")
    other = workdir / "conf" / "opslab.env"
    other.parent.mkdir()
    other.write_text("OPSLAB_JOB_WORKERS=7\n")
    monkeypatch.setenv("OPSLAB_ENV_FILE", str(other))
    settings = Settings.load()
    assert settings.job_workers == 7 and settings.env_file == other.resolve()


def test_a_missing_opslab_env_file_is_refused_naming_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLAB_ENV_FILE", str(workdir / "nowhere.env"))
    with pytest.raises(InvalidInput, match="OPSLAB_ENV_FILE: .*nowhere.env: no such file"):
        Settings.load()


def test_a_weak_secret_in_the_dotenv_is_refused_like_one_in_the_environment(workdir: Path) -> None:
    (workdir / ".env").write_text("APP_INGEST_SECRET=changeme\n")
    with pytest.raises(InvalidInput, match="OPSLAB_INGEST_SECRET: a placeholder"):
        Settings.load()


def test_the_smart_sre_seeds_env_as_is(workdir: Path) -> None:
    (workdir / ".env").write_text(SMART_SRE_ENV)
    settings = Settings.load()
    assert settings.database_url == "postgresql://user:pass@host:5432/db"
    assert settings.redis_url == "redis://host:6379/0"
    assert settings.job_queue == "rca"
    assert settings.log_level == "info"
    # left empty (with a comment after it): unset, not an empty secret
    assert settings.ingest_secret is None and settings.llm_api_key is None
    assert settings.llm_endpoint() is None


def test_the_control_plane_seeds_env_as_is(workdir: Path) -> None:
    (workdir / ".env").write_text(CONTROL_PLANE_ENV)
    settings = Settings.load()  # the placeholder key is no reason to refuse
    assert settings.port == 9001
    assert settings.responder_target_url == "http://localhost:8000"
    assert settings.responder_action_url == "http://localhost:9000"
    assert settings.responder_poll_interval_s == 30
    assert settings.responder_error_rate_threshold == 50
    assert settings.responder_runbooks_path == Path("./data/runbooks")
    assert settings.llm_key_is_placeholder() and settings.llm_endpoint() is None
    (workdir / ".env").write_text(CONTROL_PLANE_ENV.replace("your-key-here", "sk-proj-4f9a2c7e1b8d"))
    assert Settings.load().llm_endpoint() == (OPENAI_BASE_URL, "gpt-4", "sk-proj-4f9a2c7e1b8d")


def test_settings_built_in_code_read_no_dotenv(workdir: Path) -> None:
    (workdir / ".env").write_text("OPSLAB_JOB_WORKERS=3\n")
    assert Settings().job_workers == 2


def test_opslab_env_file_dev_null_reads_no_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A .env of another project in the working directory: its generic names are not opslab's.
    (workdir / ".env").write_text("DATABASE_URL=mysql://app@db/app\nPORT=3000\n")
    monkeypatch.setenv("OPSLAB_ENV_FILE", "/dev/null")
    settings = Settings.load()
    assert settings.database_url is None and settings.port == 8000


@pytest.mark.parametrize(("given", "level"), [("INFO", "info"), ("WARN", "warning"), ("Fatal", "critical")])
def test_log_level_is_read_as_other_tools_write_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, given: str, level: str
) -> None:
    monkeypatch.setenv("LOG_LEVEL", given)
    assert Settings.load().log_level == level
