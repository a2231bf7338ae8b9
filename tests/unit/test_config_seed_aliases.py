"""The seeds' variable names set the same settings as the ``OPSLAB_*`` names; ``OPSLAB_*`` wins."""

from __future__ import annotations

import pytest

from opslab.config import OPENAI_BASE_URL, OPENAI_DEFAULT_MODEL, Settings, seed_aliases
from opslab.errors import InvalidInput

SEED_VALUES = {
    "APP_ENV": ("env", "development"),
    "DATABASE_URL": ("database_url", "postgresql://user:pass@db:5432/opslab"),
    "REDIS_URL": ("redis_url", "redis://redis:6379/0"),
    "APP_INGEST_SECRET": ("ingest_secret", "s3cr3t-ingest-7f3a9c"),
    "RQ_QUEUE_NAME": ("job_queue", "rca"),
    "OPENAI_API_KEY": ("llm_api_key", "sk-test-123"),
    "LLM_MODEL": ("llm_model", "gpt-4"),
    "TARGET_API_BASE_URL": ("responder_target_url", "http://localhost:8000"),
    "ACTION_SERVER_URL": ("responder_action_url", "http://localhost:9000"),
    "POLL_INTERVAL_SECONDS": ("responder_poll_interval_s", "5"),
    "ANOMALY_THRESHOLD_ERROR_RATE": ("responder_error_rate_threshold", "50"),
    "RUNBOOKS_PATH": ("responder_runbooks_path", "/data/runbooks"),
    "AGENTLAB_RUNNER_BIN": ("runner_bin", "/usr/local/bin/opslab"),
    "PORT": ("port", "9001"),
    "LOG_LEVEL": ("log_level", "INFO"),
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(SEED_VALUES) + [f"OPSLAB_{f.upper()}" for f in Settings.model_fields]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _plain(value: object) -> str:
    secret = getattr(value, "get_secret_value", None)
    return str(secret() if secret else value)


def _expected(field: str, value: str) -> str:
    return _plain(getattr(Settings.model_validate({field: value}), field))


def test_every_seed_name_in_the_seeds_is_accepted() -> None:
    assert set(seed_aliases()) == set(SEED_VALUES)
    assert {name: field for name, (field, _) in SEED_VALUES.items()} == seed_aliases()


@pytest.mark.parametrize("seed_name", sorted(SEED_VALUES))
def test_a_seed_name_sets_its_setting(clean_env: pytest.MonkeyPatch, seed_name: str) -> None:
    field, value = SEED_VALUES[seed_name]
    clean_env.setenv(seed_name, value)
    assert _plain(getattr(Settings.load(), field)) == _expected(field, value)


@pytest.mark.parametrize("seed_name", sorted(n for n in SEED_VALUES if n != "APP_ENV"))
def test_the_opslab_name_wins_over_the_seed_name(clean_env: pytest.MonkeyPatch, seed_name: str) -> None:
    field, value = SEED_VALUES[seed_name]
    clean_env.setenv(seed_name, "7")
    clean_env.setenv(f"OPSLAB_{field.upper()}", value)
    assert _plain(getattr(Settings.load(), field)) == _expected(field, value)


def test_opslab_env_wins_over_app_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APP_ENV", "production")
    clean_env.setenv("OPSLAB_ENV", "development")
    assert Settings.load().env == "development"


def test_app_env_production_needs_the_same_secrets(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APP_ENV", "production")
    with pytest.raises(InvalidInput, match="OPSLAB_API_TOKEN"):
        Settings.load()


def test_an_empty_seed_variable_means_unset(clean_env: pytest.MonkeyPatch) -> None:
    # The seed's .env example: `APP_INGEST_SECRET=  # Optional`, `OPENAI_API_KEY=  # deterministic mode`.
    clean_env.setenv("APP_INGEST_SECRET", "")
    clean_env.setenv("OPENAI_API_KEY", "  ")
    settings = Settings.load()
    assert settings.ingest_secret is None
    assert settings.llm_api_key is None


def test_an_empty_opslab_secret_is_still_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPSLAB_INGEST_SECRET", "")
    with pytest.raises(InvalidInput, match="OPSLAB_INGEST_SECRET"):
        Settings.load()


def test_a_placeholder_llm_key_is_not_refused(clean_env: pytest.MonkeyPatch) -> None:
    # The LLM key guards no access to this service: the token rules (docs/security.md) are not for it.
    clean_env.setenv("OPENAI_API_KEY", "your-key-here")
    assert Settings.load().llm_api_key is not None


def test_a_seed_key_alone_means_the_openai_api_with_the_seeds_model(clean_env: pytest.MonkeyPatch) -> None:
    # The seeds: "Set OPENAI_API_KEY for LLM-enhanced summaries", LLM_MODEL=gpt-4.
    clean_env.setenv("OPENAI_API_KEY", "sk-test-4f9a2c7e1b")
    assert Settings.load().llm_endpoint() == (OPENAI_BASE_URL, OPENAI_DEFAULT_MODEL, "sk-test-4f9a2c7e1b")
    clean_env.setenv("LLM_MODEL", "gpt-4")
    assert Settings.load().llm_endpoint() == (OPENAI_BASE_URL, "gpt-4", "sk-test-4f9a2c7e1b")


def test_an_endpoint_of_its_own_wins_and_no_key_no_endpoint_is_off(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings.load().llm_endpoint() is None
    clean_env.setenv("OPSLAB_LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    assert Settings.load().llm_endpoint() == ("http://127.0.0.1:11434/v1", "default", None)


@pytest.mark.parametrize("placeholder", ["your-key-here", "sk-xxxx", "changeme", "<your-openai-key>"])
def test_a_placeholder_llm_key_turns_the_llm_off(clean_env: pytest.MonkeyPatch, placeholder: str) -> None:
    clean_env.setenv("OPENAI_API_KEY", placeholder)
    settings = Settings.load()
    assert settings.llm_endpoint() is None and settings.llm_key_is_placeholder()
    # with an endpoint of its own (a local model), the placeholder is simply not sent
    clean_env.setenv("OPSLAB_LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    assert Settings.load().llm_endpoint() == ("http://127.0.0.1:11434/v1", "default", None)


def test_keyword_construction_still_uses_field_names() -> None:
    assert Settings(database_url="sqlite:///x.db", job_queue="q").job_queue == "q"
