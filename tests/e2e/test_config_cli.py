"""A refused setting stops every command with one line naming the variable and exit code 2; what is
accepted starts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import OPSLAB, Service, clean_env, run_cli
from tests.ports import free_port

GOOD_TOKEN = "0f3a9c7e5b1d4a2f8c6e"
OTHER_TOKEN = "9d2b7f4e1a6c3b8d5e0f"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"OPSLAB_INGEST_SECRET": ""}, "OPSLAB_INGEST_SECRET: empty"),
        ({"OPSLAB_INGEST_SECRET": "changeme"}, "OPSLAB_INGEST_SECRET: a placeholder"),
        # The seed's name gets the same checks, but left empty it means unset (the seed's .env example).
        ({"APP_INGEST_SECRET": "changeme"}, "OPSLAB_INGEST_SECRET: a placeholder"),
        ({"OPSLAB_API_TOKEN": " "}, "OPSLAB_API_TOKEN: empty"),
        ({"OPSLAB_API_TOKEN": "x"}, "OPSLAB_API_TOKEN: only 1 character; a token needs at least 8"),
        (
            {"OPSLAB_READ_TOKEN": "tok-bar", "OPSLAB_API_TOKEN": GOOD_TOKEN},
            "OPSLAB_READ_TOKEN: only 7 characters",
        ),
        # A deployed service: production asks 16 characters of every token.
        (
            {
                "OPSLAB_ENV": "production",
                "OPSLAB_API_TOKEN": "tok-bar-123",
                "OPSLAB_INGEST_SECRET": GOOD_TOKEN,
            },
            "OPSLAB_API_TOKEN: only 11 characters; a token needs at least 16",
        ),
        ({"OPSLAB_API_TOKEN": f" {GOOD_TOKEN} "}, "OPSLAB_API_TOKEN: has spaces around it"),
        ({"OPSLAB_API_TOKEN": "your-api-token"}, "OPSLAB_API_TOKEN: a placeholder"),
        ({"OPSLAB_API_TOKEN": "${OPSLAB_API_TOKEN}"}, "OPSLAB_API_TOKEN: a placeholder"),
        ({"OPSLAB_API_TOKEN": "<token>"}, "OPSLAB_API_TOKEN: a placeholder"),
        ({"OPSLAB_API_TOKEN": "xxxxxxxxxxxxxxxxxxxxxxxx"}, "OPSLAB_API_TOKEN: a placeholder"),
        ({"OPSLAB_ACTION_TOKEN": "replace-me-with-the-action-token"}, "OPSLAB_ACTION_TOKEN: a placeholder"),
        (
            {"OPSLAB_API_TOKEN": GOOD_TOKEN, "OPSLAB_READ_TOKEN": GOOD_TOKEN},
            "OPSLAB_READ_TOKEN: the same value as OPSLAB_API_TOKEN",
        ),
        (
            {"OPSLAB_INGEST_SECRET": GOOD_TOKEN, "OPSLAB_API_TOKEN": GOOD_TOKEN},
            "OPSLAB_API_TOKEN: the same value as OPSLAB_INGEST_SECRET",
        ),
        (
            {"OPSLAB_ENV": "production"},
            "OPSLAB_ENV: production needs OPSLAB_API_TOKEN and OPSLAB_INGEST_SECRET",
        ),
        ({"OPSLAB_JOB_WORKERS": "zero"}, "OPSLAB_JOB_WORKERS"),
        ({"OPSLAB_LAB_ALLOWED_ROOTS": '["/srv/labs"'}, "OPSLAB_LAB_ALLOWED_ROOTS: not a JSON list"),
        ({"OPSLAB_REDACT_PATTERNS": "ok,(unclosed"}, "OPSLAB_REDACT_PATTERNS: item 2"),
    ],
)
def test_serve_refuses_a_bad_setting_in_one_line(tmp_path: Path, env: dict[str, str], says: str) -> None:
    r = run_cli("serve", "--port", "1", env=clean_env(OPSLAB_DATA_DIR=str(tmp_path), **env), timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], r.stderr


def test_a_short_token_is_refused_beyond_loopback_and_a_warning_on_it(tmp_path: Path) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path), OPSLAB_API_TOKEN="tok-bar-123")
    r = run_cli("serve", "--host", "0.0.0.0", "--port", "1", env=env, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "OPSLAB_API_TOKEN: only 11 characters" in lines[0] and "0.0.0.0" in lines[0]
    # On loopback it starts, saying so.
    proc = subprocess.Popen(
        [OPSLAB, "serve", "--host", "127.0.0.1", "--port", str(free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the warning comes before the service's own log
        assert "warning: OPSLAB_API_TOKEN: only 11 characters" in first, first
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("command", [("worker", "--burst"), ("db", "current"), ("runs", "list")])
def test_every_command_refuses_a_weak_token_in_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    env = clean_env(
        OPSLAB_DATA_DIR=str(tmp_path),
        OPSLAB_REDIS_URL="redis://127.0.0.1:1/0",
        OPSLAB_API_TOKEN=GOOD_TOKEN,
        OPSLAB_READ_TOKEN=GOOD_TOKEN,
    )
    r = run_cli(*command, env=env, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "OPSLAB_READ_TOKEN: the same value as OPSLAB_API_TOKEN" in lines[0], r.stderr


def test_list_settings_take_a_plain_value_and_a_placeholder_llm_key_is_no_refusal(
    start_service: Callable[..., Service], tmp_path: Path, run_001: dict[str, Any]
) -> None:
    labs = tmp_path / "labs"
    labs.mkdir()
    env = clean_env(
        OPSLAB_DATA_DIR=str(tmp_path / "data"),
        OPSLAB_LAB_ALLOWED_ROOTS=str(labs),  # a plain path, not a JSON list
        OPSLAB_CANARY_ALLOWED_TARGETS="127.0.0.1, localhost",
        OPSLAB_REDACT_PATTERNS=r"acct-\d{4,8},internal-[a-z]+",
        OPSLAB_API_TOKEN=GOOD_TOKEN,
        OPSLAB_READ_TOKEN=OTHER_TOKEN,
        OPENAI_API_KEY="your-key-here",  # not a credential of this service: never a reason to refuse
    )
    svc = start_service(env=env)
    auth = {"Authorization": f"Bearer {GOOD_TOKEN}"}
    with httpx.Client(base_url=svc.url, headers=auth, timeout=30) as c:
        # the one plain path is the one allowed root: a path under it gets past the root check
        outside = c.post("/lab/runs", json={"experiment_path": "/etc/opslab/experiment.yaml"})
        assert outside.status_code == 403, outside.text
        inside = c.post("/lab/runs", json={"experiment_path": str(labs / "missing.yaml")})
        assert 400 <= inside.status_code < 500 and inside.status_code != 403, inside.text
        # both comma-separated patterns redact, the {4,8} of the first kept whole
        leaky = {**run_001, "error_message": "acct-123456 and internal-billing failed"}
        c.post("/agent-runs", json=leaky).raise_for_status()
        stored = c.get(f"/agent-runs/{run_001['run_id']}").json()["error_message"]
        assert "acct-123456" not in stored and "internal-billing" not in stored, stored
