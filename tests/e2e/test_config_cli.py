"""A refused setting stops every command with one line naming the variable and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import clean_env, run_cli


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OPSLAB_INGEST_SECRET", "", "OPSLAB_INGEST_SECRET: empty"),
        ("OPSLAB_INGEST_SECRET", "changeme", "OPSLAB_INGEST_SECRET: a placeholder"),
        # The seed's name gets the same checks, but left empty it means unset (the seed's .env example).
        ("APP_INGEST_SECRET", "changeme", "OPSLAB_INGEST_SECRET: a placeholder"),
        ("OPSLAB_API_TOKEN", " ", "OPSLAB_API_TOKEN: empty"),
        ("OPSLAB_ENV", "production", "OPSLAB_ENV=production needs OPSLAB_API_TOKEN and OPSLAB_INGEST_SECRET"),
        ("OPSLAB_JOB_WORKERS", "zero", "OPSLAB_JOB_WORKERS"),
    ],
)
def test_serve_refuses_a_bad_setting_in_one_line(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    env = clean_env(OPSLAB_DATA_DIR=str(tmp_path), **{variable: value})
    r = run_cli("serve", "--port", "1", env=env, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], r.stderr
