"""Settings: the one place that reads the environment (prefix ``OPSLAB_``).

Nothing builds a ``Settings`` at import time; the CLI main, ``create_app`` and the worker main
each build one and pass it down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPSLAB_", extra="ignore")

    data_dir: Path = Field(default=Path(".opslab"), description="Where the default database and state live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in the data dir."
    )
    redis_url: str | None = Field(default=None, description="Set to run jobs on RQ workers through Redis.")
    ingest_secret: SecretStr | None = Field(default=None, description="Required X-Ingest-Secret when set.")
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token required by every non-GET route except ingestion."
    )
    max_body_bytes: int = Field(
        default=5 * MIB, gt=0, description="Largest request body accepted (413 above)."
    )
    url: str | None = Field(default=None, description="Service URL the CLI talks to (OPSLAB_URL).")

    redact_secrets: bool = Field(default=True, description="Redact API keys, tokens and passwords on ingest.")
    redact_patterns: list[str] = Field(
        default_factory=list, description="Extra regular expressions whose matches are redacted on ingest."
    )

    job_workers: int = Field(
        default=2, ge=1, le=64, description="Worker threads of the embedded job backend."
    )
    job_max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts before a job is failed.")
    job_timeout_s: float = Field(default=600.0, gt=0, description="Longest a single job attempt may run.")
    job_queue: str = Field(default="opslab", min_length=1, max_length=100, description="RQ queue name.")
    job_lease_s: float = Field(
        default=15.0, gt=0, description="A running job whose worker is silent this long is given to another."
    )

    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint; off when unset.")
    llm_model: str | None = Field(default=None)
    llm_api_key: SecretStr | None = Field(default=None)
    llm_timeout_s: float = Field(default=20.0, gt=0)

    @field_validator("ingest_secret", "api_token", "llm_api_key")
    @classmethod
    def _refuse_empty_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty variable means "not set"; a placeholder secret would silently protect nothing.
        if value is None or not value.get_secret_value():
            return None
        if value.get_secret_value() in {"changeme", "secret", "change-me"}:
            raise ValueError("refusing a placeholder secret; set a real value or leave it unset")
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'opslab.db').resolve()}"
