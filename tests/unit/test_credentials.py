"""The rules a token that guards access must meet, and list settings read from the environment."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from opslab.config import CREDENTIALS, Settings
from opslab.credentials import MIN_LENGTH, credential_problem, guessable, is_placeholder
from opslab.errors import InvalidInput

GOOD = "0f3a9c7e5b1d4a2f8c6e"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for field in Settings.model_fields:
        monkeypatch.delenv(f"OPSLAB_{field.upper()}", raising=False)
    for seed in ("APP_INGEST_SECRET", "OPENAI_API_KEY", "APP_ENV"):
        monkeypatch.delenv(seed, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "value",
    [
        "changeme",
        "CHANGEME",
        "your-api-token",
        "your_api_token_here",
        "put-your-token-here-please",
        "${OPSLAB_API_TOKEN}",
        "Bearer ${TOKEN}-with-a-long-suffix",
        "$OPSLAB_API_TOKEN",
        "{{ api_token }}",
        "%OPSLAB_API_TOKEN%",
        "<token>",
        "<your token goes here>",
        "[api-token]",
        "xxxxxxxxxxxxxxxxxxxx",
        "xxxx-xxxx-xxxx-xxxx",
        "0000000000000000",
        "****************",
        "replace-me-with-something-real",
        "example-token-1234567890",
        "a-placeholder-value-0123",
    ],
)
def test_a_placeholder_is_refused_whatever_its_length(value: str) -> None:
    problem = credential_problem(value)
    assert problem is not None and problem.startswith("a placeholder"), problem
    assert is_placeholder(value)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x1", "only 2 characters"),
        ("tok-bar-123", "only 11 characters"),
        ("7f3a9c1e5b2d4a8", f"only 15 characters; a token needs at least {MIN_LENGTH}"),
        (f" {GOOD}", "has spaces around it"),
        (f"{GOOD}\n", "has spaces around it"),
    ],
)
def test_a_short_empty_or_padded_token_is_refused(value: str, says: str) -> None:
    problem = credential_problem(value)
    assert problem is not None and problem.startswith(says), problem


def test_generated_tokens_are_accepted() -> None:
    for _ in range(2000):
        for token in (secrets.token_urlsafe(32), secrets.token_hex(8), secrets.token_hex(32)):
            assert credential_problem(token) is None, token
    assert credential_problem("correct-horse-battery-staple") is None


GUESSABLE = ["password12345678", "qwertyuiopasdfgh", "1234567890abcdef", "admin-admin-admin"]


@pytest.mark.parametrize("value", GUESSABLE)
@pytest.mark.parametrize("name", CREDENTIALS)
def test_a_guessable_token_is_refused_in_production_naming_its_variable(
    clean_env: pytest.MonkeyPatch, value: str, name: str
) -> None:
    clean_env.setenv("OPSLAB_ENV", "production")
    clean_env.setenv("OPSLAB_API_TOKEN", "0f3a9c7e5b1d4a2f8c6e")
    clean_env.setenv("OPSLAB_INGEST_SECRET", "q8Zt3vXk1mP0wR7nY4cL")
    clean_env.setenv(f"OPSLAB_{name.upper()}", value)
    with pytest.raises(InvalidInput) as exc:
        Settings.load()
    message = exc.value.message
    assert message.startswith(f"OPSLAB_{name.upper()}: guessable"), message
    assert "openssl rand -hex 32" in message and "\n" not in message and value not in message, message


@pytest.mark.parametrize(
    "value",
    [
        *GUESSABLE,
        "trustno1trustno1",  # a common password, repeated
        "asdfghjklasdfghj",  # a keyboard walk
        "zaq12wsxcde34rfv",  # a keyboard walk down the columns
        "abcdefghijklmnop",  # a sequence
        "1111222233334444",  # repeats
        "Password123456!!",  # a word, digits, symbols
        "opslab-opslab-opslab",  # the product's name
        "welcome2024welcome",  # a word and a year
    ],
)
def test_keyboard_walks_repeats_and_words_are_guessable(value: str) -> None:
    assert (problem := guessable(value)) is not None and problem.startswith("guessable"), value


def test_random_and_documented_tokens_are_not_guessable() -> None:
    # `openssl rand -hex 32` is token_hex(32); docs/security.md also gives token_urlsafe(32).
    # The shortest come closest to the floor (token_hex(8) at no less than 10^11.6 in 40,000 draws).
    for _ in range(150):
        for token in (secrets.token_hex(8), secrets.token_urlsafe(16), secrets.token_hex(16)):
            assert guessable(token) is None, token
    for _ in range(20):
        for token in (secrets.token_urlsafe(32), secrets.token_hex(32)):
            assert guessable(token) is None, token
    assert guessable(secrets.token_urlsafe(200)) is None  # longer than zxcvbn takes at once
    assert guessable("password" * 20) is not None


def test_a_guessable_token_is_only_a_warning_for_a_local_service(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Accepted at load outside production; `opslab serve` prints the line, or refuses it beyond loopback.
    settings = Settings(data_dir=tmp_path, api_token="password12345678")
    assert [line.split(": guessable")[0] for line in settings.weak_credentials()] == ["OPSLAB_API_TOKEN"]


def test_a_command_on_a_local_service_does_not_load_the_estimator(tmp_path: Path) -> None:
    # zxcvbn's word lists take ~40 ms to load: a command pays for them only when a deployed service checks.
    code = f"""
import sys, opslab.cli
from opslab.config import Settings
Settings(data_dir={str(tmp_path)!r}, api_token="0f3a9c7e5b1d4a2f8c6e")
print("zxcvbn" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("first", range(len(CREDENTIALS)))
def test_no_two_credentials_may_share_a_value(first: int, tmp_path: Path) -> None:
    for second in range(first + 1, len(CREDENTIALS)):
        a, b = CREDENTIALS[first], CREDENTIALS[second]
        with pytest.raises(ValueError, match=f"{b}\n.*the same value as OPSLAB_{a.upper()}"):
            Settings(data_dir=tmp_path, **{a: GOOD, b: GOOD})


def test_each_credential_is_held_to_the_rules(tmp_path: Path) -> None:
    for name in CREDENTIALS:
        with pytest.raises(ValueError, match=f"{name}\n.*only 5 characters"):
            Settings(data_dir=tmp_path, **{name: "short"})


def test_the_llm_key_is_not_a_credential(clean_env: pytest.MonkeyPatch) -> None:
    # A placeholder LLM key means "no LLM" (the LLM's own business), never a refusal to start.
    for value in ("sk-xxxx", "your-key-here", "changeme"):
        clean_env.setenv("OPENAI_API_KEY", value)
        loaded = Settings.load().llm_api_key
        assert loaded is not None and loaded.get_secret_value() == value


@pytest.mark.parametrize(
    ("text", "roots"),
    [
        ("/srv/labs", ["/srv/labs"]),
        ("/srv/a,/srv/b", ["/srv/a", "/srv/b"]),
        (" /srv/a , /srv/b ,", ["/srv/a", "/srv/b"]),
        ('["/srv/a", "/srv/with,comma"]', ["/srv/a", "/srv/with,comma"]),
        ("", []),
    ],
)
def test_a_list_setting_is_a_json_list_or_comma_separated(
    clean_env: pytest.MonkeyPatch, text: str, roots: list[str]
) -> None:
    clean_env.setenv("OPSLAB_LAB_ALLOWED_ROOTS", text)
    assert Settings.load().lab_allowed_roots == [Path(r) for r in roots]


def test_commas_inside_a_pattern_stay_in_it(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPSLAB_REDACT_PATTERNS", r"acct-\d{4,8}, [,;]sep, (a|b),x\,y")
    assert Settings.load().redact_patterns == [r"acct-\d{4,8}", "[,;]sep", "(a|b)", r"x\,y"]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OPSLAB_LAB_ALLOWED_ROOTS", '["/srv/a"', "OPSLAB_LAB_ALLOWED_ROOTS: not a JSON list"),
        ("OPSLAB_LAB_ALLOWED_ROOTS", '["/srv/a", 5]', "OPSLAB_LAB_ALLOWED_ROOTS"),
        ("OPSLAB_REDACT_PATTERNS", "ok,(unclosed", "OPSLAB_REDACT_PATTERNS: item 2 '(unclosed'"),
        ("OPSLAB_CANARY_PLAN_ENV", "[1, 2]", "OPSLAB_CANARY_PLAN_ENV"),
    ],
)
def test_a_bad_list_setting_names_its_variable(
    clean_env: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(InvalidInput) as exc:
        Settings.load()
    assert exc.value.message.startswith(says) and "\n" not in exc.value.message, exc.value.message
