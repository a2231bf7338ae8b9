"""Settings: the one place that reads the environment (prefix ``OPSLAB_``).

Nothing builds a ``Settings`` at import time; the CLI main, ``create_app`` and the worker main
each build one and pass it down.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, NamedTuple, Self, TypeVar

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from opslab import config_sources
from opslab.capabilities import CAPABILITIES, PLATFORM, owner_of_setting
from opslab.credentials import (
    MIN_LOCAL_LENGTH,
    credential_problem,
    deployed_problem,
    is_placeholder,
    shared_with,
)
from opslab.errors import InvalidInput

MIB = 1024 * 1024
# An OpenAI key with no endpoint of its own means the OpenAI API, as it does for the seeds.
OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
# Settings that guard access, in the order they are validated (each is compared with those before it).
CREDENTIALS = ("ingest_secret", "api_token", "read_token", "ui_session_secret", "action_token")


def _list_value(value: object) -> object:
    """A list setting from the environment: a JSON list (``["/srv/a", "/srv/b"]``) or comma-separated
    values (``/srv/a,/srv/b``, or one plain ``/srv/labs``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a JSON list ({exc}); give a JSON list or comma-separated values") from None
    return [part.strip() for part in _split_commas(text) if part.strip()]


def _split_commas(text: str) -> list[str]:
    """Split at the commas outside brackets, so a pattern's ``{1,3}`` or ``[,;]`` stays whole; ``\\,``
    is a comma within an item."""
    parts: list[str] = []
    current: list[str] = []
    depth, in_class, escaped = 0, False, False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch in "({":
            depth += 1
        elif ch in ")}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    return [*parts, "".join(current)]


def _log_level(value: object) -> object:
    """``LOG_LEVEL`` as other tools write it: any case, ``WARN``, ``FATAL``."""
    if not isinstance(value, str):
        return value
    level = value.strip().lower()
    return {"warn": "warning", "fatal": "critical"}.get(level, level)


T = TypeVar("T")
# NoDecode: the environment's text reaches ``_list_value`` as it is, not through a JSON parse that fails
# on a plain path.
ListSetting = Annotated[list[T], NoDecode, BeforeValidator(_list_value)]


def _alias(name: str, seed_name: str) -> AliasChoices:
    """``OPSLAB_<NAME>``, the seed's own variable name, and the field name (for keyword construction).

    The first name present wins, so ``OPSLAB_<NAME>`` overrides the seed's name when both are set."""
    return AliasChoices(f"OPSLAB_{name.upper()}", seed_name, name)


def seed_aliases() -> dict[str, str]:
    """Each accepted seed variable name -> the field it sets."""
    found: dict[str, str] = {}
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str) and choice.isupper() and not choice.startswith("OPSLAB_"):
                    found[choice] = field_name
    return found


class LlmEndpoint(NamedTuple):
    """Where the LLM is, when it is on: resolved from the settings by ``Settings.llm_endpoint``."""

    base_url: str
    model: str
    api_key: str | None


class Settings(BaseSettings):
    # A .env file is read only by ``load`` (./.env or OPSLAB_ENV_FILE): a ``Settings(...)`` built in code
    # reads the environment alone.
    model_config = SettingsConfigDict(env_prefix="OPSLAB_", extra="ignore", populate_by_name=True)

    env_file: Path | None = Field(
        default=None,
        description="A .env file to read (KEY=value lines; the seeds' names work there too); the environment "
        "wins over it. Default: `.env` in the working directory, when there is one (`/dev/null`: none). "
        "`opslab serve` says which file it read.",
    )

    env: Literal["development", "production"] = Field(
        default="development",
        validation_alias=_alias("env", "APP_ENV"),
        description="production: refuse to start without an API token and an ingest secret.",
    )

    data_dir: Path = Field(default=Path(".opslab"), description="Where the default database and state live.")
    database_url: str | None = Field(
        default=None,
        validation_alias=_alias("database_url", "DATABASE_URL"),
        description="SQLAlchemy URL (`postgresql://…` uses psycopg 3); default: a SQLite file in the data "
        "dir.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=_alias("redis_url", "REDIS_URL"),
        description="Set to run jobs on RQ workers (`opslab worker`) through Redis.",
    )
    ingest_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_alias("ingest_secret", "APP_INGEST_SECRET"),
        description="Required X-Ingest-Secret on ingestion when set.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token required by every route but ingestion, `/` and `/healthz` (reads too, "
        "unless OPSLAB_PUBLIC_READS=true).",
    )
    read_token: SecretStr | None = Field(
        default=None,
        description="A second bearer token that may only read (GET), for dashboards and scrapers.",
    )
    ui_session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the dashboard's sign-in sessions; default: derived from the API and read "
        "tokens (changing any of them signs every browser out).",
    )
    ui_session_max_age_s: int = Field(
        default=12 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="How long a dashboard sign-in lasts, in seconds; then the browser signs in again.",
    )
    public_reads: bool = Field(
        default=False,
        description="With a token set, leave reads (GET) open to anyone (telemetry holds prompts and "
        "outputs: think first).",
    )
    canary_allowed_targets: ListSetting[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        description="Hosts (or host:port) a canary started from the API may send load to, plus its "
        "Prometheus and webhook hosts; others are a 403, dry runs included.",
    )
    canary_plan_env: ListSetting[str] = Field(
        default_factory=lambda: ["CANARY_*"],
        description="Environment variables a canary plan sent to the service may read as ${NAME} (glob "
        "patterns); the service's own OPSLAB_* settings never.",
    )
    canary_max_requests: int = Field(
        default=200_000,
        ge=1,
        description="Most requests one canary started from the API may send (QPS x (windows + warm-up)); "
        "above is a 403.",
    )
    lab_runs_dirs: ListSetting[Path] = Field(
        default_factory=list,
        description="Folders of lab runs the dashboard lists (a JSON list or comma-separated; each a project "
        "root, its .lab/runs, or a folder of run directories); the data dir's lab/runs is always listed.",
    )
    lab_trial_zygote: bool = Field(
        default=True,
        description="Isolated trials start in fresh namespaces inside one sandbox per worker (a zygote), not "
        "in a new bubblewrap sandbox each; false: a sandbox per trial (slower, the same guarantees).",
    )
    lab_trial_zygote_native: bool = Field(
        default=True,
        description="The zygote is a small C program, compiled on first use with `$CC` (else `cc`) and "
        "cached under the user's cache folder; false, no compiler or a failed build: the Python zygote "
        "(slower, the same steps).",
    )
    lab_allowed_roots: ListSetting[Path] = Field(
        default_factory=list,
        description="Folders the service may run lab experiments from (POST /lab/runs; a JSON list or "
        "comma-separated, e.g. `/srv/labs`): the "
        "experiment, its project and its dataset must lie under one. Empty: the API runs no experiment (403 "
        "naming the setting).",
    )
    max_body_bytes: int = Field(
        default=5 * MIB, gt=0, description="Largest request body accepted (413 above)."
    )
    max_batch_items: int = Field(
        default=10_000,
        ge=1,
        description="Most runs in one `POST /agent-runs/batch` (413 naming this setting above).",
    )
    max_otlp_spans: int = Field(
        default=10_000,
        ge=1,
        description="Most spans in one OTLP export request (413 naming this setting above); an "
        "OpenTelemetry SDK's batch processor sends 512 at most, a collector's batch processor what it is "
        "told to (`send_batch_max_size`).",
    )
    otlp_sidecar: bool = Field(
        default=True,
        description="Plan the traces of large OTLP exports (256 spans and more) on a second core: the "
        "service forks one helper process when it starts, which maps three fifths of such an export's "
        "traces while the service maps and writes the rest (the service writes every row, in one "
        "transaction). Off, or on a one-core machine, the service maps them all itself.",
    )
    max_in_flight: int = Field(
        default=64,
        ge=1,
        description="Requests one service process works on at once; beyond it, a 503 with `Retry-After` "
        "(event streams and `/healthz` are not counted). Run more workers or replicas for more.",
    )
    access_log: bool = Field(
        default=True,
        description="One log line per request (client, method, path, status, duration; secrets in the "
        "query masked) on the `opslab.access` logger.",
    )
    url: str | None = Field(
        default=None,
        description="Service URL the CLI talks to; without it, commands that can work on the local database "
        "do (`opslab COMMAND --help` says which need a service).",
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        validation_alias=_alias("port", "PORT"),
        description="Port `opslab serve` listens on when `--port` is not given.",
    )
    log_level: Annotated[LogLevel, BeforeValidator(_log_level)] = Field(
        default="info",
        validation_alias=_alias("log_level", "LOG_LEVEL"),
        description="Log level of `opslab serve` (its own log and uvicorn's) when `--log-level` is not "
        "given; any case (`INFO`, `info`), `warn` and `fatal` too.",
    )
    runner_bin: str | None = Field(
        default=None,
        validation_alias=_alias("runner_bin", "AGENTLAB_RUNNER_BIN"),
        description="The `opslab` executable the lab SDK's LabClient runs; default: the one beside the "
        "running Python, else on PATH.",
    )
    knowledge_retrieval: Literal["bm25", "dense", "hybrid"] = Field(
        default="bm25",
        description="How knowledge is searched: BM25, embeddings (`dense`, with the `dense` extra) or both "
        "rankings fused (`hybrid`).",
    )
    knowledge_dir: Path | None = Field(
        default=None,
        description="Folder of your own runbooks and incidents (Markdown); default: <data_dir>/knowledge.",
    )
    artifact_store: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the files of finished work go (lab runs), so any replica serves them: a folder "
        "(default: <data_dir>/artifacts) or any fsspec URL shared by every machine (s3://bucket/opslab with "
        "s3fs installed, file:///mnt/shared/opslab).",
    )

    price_table: Path | None = Field(
        default=None,
        description="JSON file of model prices (USD per 1M input/output tokens) replacing or adding to the "
        "bundled table; used for the cost of runs whose traces carry tokens but no cost.",
    )
    redact_secrets: bool = Field(default=True, description="Redact API keys, tokens and passwords on ingest.")
    redact_patterns: ListSetting[str] = Field(
        default_factory=list,
        description="Extra regular expressions whose matches are redacted on ingest (a JSON list, or "
        "comma-separated: a comma inside (), [] or {} stays in its pattern).",
    )

    job_workers: int = Field(
        default=2, ge=1, le=64, description="Worker threads of the embedded job backend."
    )
    job_max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts before a job is failed.")
    job_timeout_s: float = Field(default=600.0, gt=0, description="Longest a single job attempt may run.")
    job_queue: str = Field(
        default="opslab",
        min_length=1,
        max_length=100,
        validation_alias=_alias("job_queue", "RQ_QUEUE_NAME"),
        description="RQ queue name (the service and its workers must agree); lab trials (`--executor rq`) "
        "go to `<queue>-tasks`, which `opslab worker` serves first.",
    )
    job_lease_s: float = Field(
        default=15.0,
        gt=0,
        description="A running job whose worker stops heartbeating this long goes back to the queue; a lab "
        "trial whose worker is silent this long is run again, once.",
    )
    service_lease_s: float = Field(
        default=10.0,
        ge=1,
        le=600,
        description="The responder and the autoops loop run in one replica at a time, under a lease renewed "
        "every third of this; when that replica dies another takes over within this plus a few seconds.",
    )
    canary_lease_s: float = Field(
        default=15.0,
        ge=1,
        le=3600,
        description="A canary holds its target under a lease renewed every third of this; a canary that died "
        "(its lease lapsed, or at once when its process is provably gone on the same host) has its target's "
        "baseline flags restored by whichever process looks next.",
    )

    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint (a local server, a gateway); unset with an API key set: the "
        f"OpenAI API ({OPENAI_BASE_URL}); unset without one: the LLM is off.",
    )
    llm_model: str | None = Field(
        default=None,
        validation_alias=_alias("llm_model", "LLM_MODEL"),
        description=f"Model name sent to that endpoint; default: `{OPENAI_DEFAULT_MODEL}` on the OpenAI API, "
        "`default` on another endpoint.",
    )
    llm_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=_alias("llm_api_key", "OPENAI_API_KEY"),
        description="Bearer key for that endpoint; alone, it turns the LLM on with the OpenAI API. A "
        "placeholder (`your-key-here`, `sk-xxxx` …) counts as no key: a warning, not a refusal.",
    )
    llm_timeout_s: float = Field(
        default=20.0, gt=0, description="Per-call timeout; on timeout the deterministic result stands."
    )
    rca_model: Path | None = Field(
        default=None,
        description="A transcript localiser fitted to your own labelled runs (`opslab rca train --out`); "
        "default: the shipped one (docs/rca.md).",
    )
    rca_llm_strategy: Literal["all_at_once", "step_by_step", "binary_search"] = Field(
        default="all_at_once",
        description="How the LLM localises the decisive step of a transcript, when an LLM is configured "
        "(docs/rca.md).",
    )

    # The responder; each seed setting name (TARGET_API_BASE_URL …) works as an alias.
    responder_enabled: bool = Field(
        default=False, description="Run the autonomous incident responder inside `opslab serve`."
    )
    responder_target_url: str | None = Field(
        default=None,
        validation_alias=_alias("responder_target_url", "TARGET_API_BASE_URL"),
        description="The service the responder watches; default: the sandbox's endpoints.json.",
    )
    responder_action_url: str | None = Field(
        default=None,
        validation_alias=_alias("responder_action_url", "ACTION_SERVER_URL"),
        description="The action server the responder acts through; default: the sandbox's endpoints.json.",
    )
    action_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the action server; default: the sandbox's generated action-token.",
    )
    responder_poll_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        validation_alias=_alias("responder_poll_interval_s", "POLL_INTERVAL_SECONDS"),
        description="Seconds between two polls of the target.",
    )
    responder_error_rate_threshold: float = Field(
        default=10.0,
        gt=0,
        le=100,
        validation_alias=_alias("responder_error_rate_threshold", "ANOMALY_THRESHOLD_ERROR_RATE"),
        description="Error rate (percent) that is anomalous whatever the baseline.",
    )
    responder_runbooks_path: Path | None = Field(
        default=None,
        validation_alias=_alias("responder_runbooks_path", "RUNBOOKS_PATH"),
        description="A folder of your own runbooks, searched beside the built-in ones and the knowledge dir.",
    )
    responder_consecutive: int = Field(
        default=2, ge=1, le=20, description="Bad polls in a row before an incident opens."
    )
    responder_settle_s: float = Field(
        default=-1.0,
        description="Seconds to wait after an action before verifying; negative: two poll intervals, capped "
        "at 30 s.",
    )
    responder_dry_run: bool = Field(default=False, description="Plan actions but never execute them.")
    responder_kill_switch: bool = Field(
        default=False, description="Start halted: watch and diagnose, execute nothing."
    )
    responder_auto_approve: bool = Field(
        default=False, description="Lift OPSLAB_RESPONDER_APPROVAL_RISK: no action waits for an approval."
    )
    responder_approval_risk: Literal["none", "low", "medium", "high"] = Field(
        default="none",
        description="Actions the action server's catalog rates this risky or more wait for a human "
        "(`high`: the production profile); `none`: enabling the responder is the consent to act.",
    )
    responder_max_actions: int = Field(default=3, ge=1, le=20, description="Most actions per incident.")
    responder_cooldown_s: float = Field(
        default=60.0,
        ge=0,
        description="Least time between two runs of the same action; an incident that needs it meanwhile "
        "waits (held) and is acted on when it ends, if its fault goes on.",
    )
    responder_confirm_s: float = Field(
        default=15.0,
        ge=0,
        description="How long a high-risk action (a restart) on soft evidence only (a trend, slowness) or an "
        "unsure diagnosis waits before it runs, and runs only if the fault outlives the wait.",
    )
    responder_webhook_url: str | None = Field(
        default=None,
        description="Slack-compatible webhook told when an incident opens, awaits approval, resolves or "
        "escalates.",
    )

    autoops_seed: int = Field(
        default=0, ge=0, description="Seed of the simulated CI runner and the optimizer's sampling."
    )
    autoops_optimizer: Literal["bandit", "dqn"] = Field(
        default="bandit",
        description="What chooses the builds' configurations: the contextual Thompson bandit, or the seed's "
        "Stable-Baselines3 DQN (`dqn`, with the `dqn` extra; about 60 times the bandit's CPU).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        dotenv = dotenv_settings
        if isinstance(dotenv_settings, DotEnvSettingsSource):
            dotenv = _SeedAwareDotEnvSource(
                settings_cls,
                env_file=dotenv_settings.env_file,
                env_file_encoding=dotenv_settings.env_file_encoding,
            )
        return (init_settings, _SeedAwareEnvSource(settings_cls), dotenv, file_secret_settings)

    def lab_run_roots(self) -> list[Path]:
        """Where lab runs are looked for: each configured folder (a project root means its .lab/runs),
        then the data dir's own lab/runs."""
        roots = [p / ".lab" / "runs" if (p / ".lab" / "runs").is_dir() else p for p in self.lab_runs_dirs]
        return list(dict.fromkeys([*roots, self.data_dir / "lab" / "runs"]))

    @field_validator(*CREDENTIALS)
    @classmethod
    def _refuse_weak_credential(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # A weak, padded or shared credential would protect less than it seems: refuse it rather than run.
        if value is None:
            return None
        secret = value.get_secret_value()
        problem = credential_problem(secret, min_length=MIN_LOCAL_LENGTH)
        if problem is not None:
            raise ValueError(problem)
        earlier = {
            _variable((name,)): given.get_secret_value()
            for name in CREDENTIALS[: CREDENTIALS.index(str(info.field_name))]
            if isinstance(given := info.data.get(name), SecretStr)
        }
        if (twin := shared_with(secret, earlier)) is not None:
            raise ValueError(
                f"the same value as {twin}: each token needs its own (one would act as the other)"
            )
        return value

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"item {i + 1} {pattern!r}: not a regular expression ({exc}); a pattern holding a comma "
                    "needs the JSON list form"
                ) from None
        return patterns

    def weak_credentials(self) -> list[str]:
        """``"VARIABLE: why"`` for each token too short or too guessable for a deployed service (checked at
        start-up by a service bound beyond loopback; refused at load in production)."""
        out = []
        for name in CREDENTIALS:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and (why := deployed_problem(value.get_secret_value())):
                out.append(f"{_variable((name,))}: {why}")
        return out

    @model_validator(mode="after")
    def _production_is_protected(self) -> Self:
        if self.env == "production" and (short := self.weak_credentials()):
            raise ValueError(short[0])
        if self.env == "production":
            missing = [
                name
                for name, value in (
                    ("OPSLAB_API_TOKEN", self.api_token),
                    ("OPSLAB_INGEST_SECRET", self.ingest_secret),
                )
                if value is None
            ]
            if missing:
                # A rule over several settings names its variable first ("NAME: reason"), for ``load``.
                raise ValueError(f"OPSLAB_ENV: production needs {' and '.join(missing)}")
        return self

    @classmethod
    def load(cls) -> Settings:
        """Settings from the environment and a .env file (``OPSLAB_ENV_FILE``, else ``./.env`` when there is
        one), the environment winning; a refused value is one ``InvalidInput`` naming the variable."""
        env_file = config_sources.env_file()
        try:
            if env_file is None:
                return cls()
            return cls(_env_file=env_file, env_file=env_file)
        except SettingsError as exc:
            # A value the environment source could not read at all (before validation): name its variable.
            found = re.search(r'field "(\w+)"', str(exc))
            raise InvalidInput.for_field(
                _variable((found.group(1),) if found else ()), "could not be read: check its format"
            ) from None
        except ValidationError as exc:
            errors = [
                _field_error(err.get("loc", ()), str(err.get("msg", "")).removeprefix("Value error, "))
                for err in exc.errors(include_url=False)
            ]
            raise InvalidInput.for_fields(errors) from None

    def llm_endpoint(self) -> LlmEndpoint | None:
        """The LLM when it is on: ``OPSLAB_LLM_BASE_URL``, else the OpenAI API when a real key is set; None:
        off. A placeholder key (the seeds' ``your-key-here``) counts as no key."""
        key = self.llm_api_key.get_secret_value() if self.llm_api_key is not None else None
        if key is not None and (not key.strip() or is_placeholder(key.strip())):
            key = None
        if self.llm_base_url:
            return LlmEndpoint(self.llm_base_url, self.llm_model or "default", key)
        if key is not None:
            return LlmEndpoint(OPENAI_BASE_URL, self.llm_model or OPENAI_DEFAULT_MODEL, key)
        return None

    def llm_key_is_placeholder(self) -> bool:
        """Whether the LLM key set is a placeholder copied from an example (so the key counts as unset)."""
        key = self.llm_api_key.get_secret_value().strip() if self.llm_api_key is not None else ""
        return bool(key) and is_placeholder(key)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'opslab.db').resolve()}"

    def secret_values(self) -> tuple[str, ...]:
        """The secrets this service holds, to mask wherever they would be stored or shown."""
        found = (
            self.api_token,
            self.read_token,
            self.ingest_secret,
            self.llm_api_key,
            self.action_token,
            self.ui_session_secret,
        )
        return tuple(s.get_secret_value() for s in found if s is not None)

    @property
    def resolved_artifact_store(self) -> str:
        return self.artifact_store or str(self.data_dir / "artifacts")

    @property
    def resolved_knowledge_dir(self) -> Path:
        return self.knowledge_dir if self.knowledge_dir is not None else self.data_dir / "knowledge"


def _without_empty_seed_names(found: Mapping[str, str | None]) -> dict[str, str | None]:
    """The seeds' .env examples leave a variable empty to mean "off" (``APP_INGEST_SECRET=``,
    ``OPENAI_API_KEY=``): such a one is dropped; an empty ``OPSLAB_*`` secret stays an error (it would
    protect nothing)."""
    seed_names = {name.lower() for name in seed_aliases()}
    return {
        key: value
        for key, value in found.items()
        if not (key.lower() in seed_names and (value is None or not value.strip()))
    }


class _SeedAwareEnvSource(EnvSettingsSource):
    """The environment, where a seed's variable left empty means unset."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return _without_empty_seed_names(super()._load_env_vars())


class _SeedAwareDotEnvSource(DotEnvSettingsSource):
    """A .env file, where a seed's variable left empty means unset (as in the seeds' ``.env.example``)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return _without_empty_seed_names(super()._load_env_vars())


def process_environment() -> Mapping[str, str]:
    """The whole environment, for what a user's file may reference as ``${NAME}`` (a canary plan's
    headers): read here, where the environment is read, and passed on as data."""
    return dict(os.environ)  # noqa: TID251


def _variable(loc: tuple[object, ...] | list[object]) -> str:
    name = str(loc[0]) if loc else "settings"
    return name if name.isupper() else f"OPSLAB_{name.upper()}"


def _field_error(loc: tuple[object, ...] | list[object], message: str) -> dict[str, str]:
    """``{"field", "message"}`` of one refused value; a rule over several settings (no ``loc``) names its
    variable at the start of its message."""
    named = re.match(r"(OPSLAB_[A-Z0-9_]+): (.*)", message, re.DOTALL) if not loc else None
    if named:
        return {"field": named.group(1), "message": named.group(2)}
    return {"field": _variable(loc), "message": message}


def settings_sections() -> dict[str, list[str]]:
    """The settings by the capability that owns them (``opslab.capabilities``), the service's own first:
    ``{"service": ["env", "data_dir", …], "telemetry": ["ingest_secret", …], …}``, fields in declared order.
    Every field has exactly one owner: a prefix no capability claims falls to the service."""
    sections: dict[str, list[str]] = {cap.name: [] for cap in (PLATFORM, *CAPABILITIES)}
    for field in Settings.model_fields:
        sections[owner_of_setting(field).name].append(field)
    return {name: fields for name, fields in sections.items() if fields}
