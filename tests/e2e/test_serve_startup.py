"""``opslab serve`` as a user of the seeds starts it: a ``.env`` in its working directory is read and named
in the log, the seed's PORT and LOG_LEVEL are honoured, the log says whether an LLM is on (never the key),
and a port already in use is one clear line."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import OPSLAB, Service, clean_env, run_cli, wait_http
from tests.ports import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _seedless_env(**extra: str) -> dict[str, str]:
    """The environment without the seeds' generic names either (PORT, LOG_LEVEL, OPENAI_API_KEY …)."""
    from opslab.config import seed_aliases

    env = {k: v for k, v in clean_env().items() if k not in seed_aliases()}
    env.update(extra)
    return env


@pytest.fixture
def serve_in(tmp_path: Path) -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for svc in started:
        svc.stop()


def _start(
    started: list[Service], cwd: Path, port: int, *args: str, env: dict[str, str] | None = None
) -> Service:
    log = cwd / f"serve-{port}.log"
    proc = subprocess.Popen(
        [OPSLAB, "serve", *args],
        cwd=cwd,
        env=env or _seedless_env(OPSLAB_DATA_DIR=str(cwd / "data")),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    svc = Service(proc, f"http://127.0.0.1:{port}", log)
    started.append(svc)
    wait_http(svc.url + "/", proc, log)
    return svc


def _run_001() -> dict[str, object]:
    run: dict[str, object] = json.loads((FIXTURES / "run-001-sufficient.json").read_text())
    return run


def test_an_ingest_secret_in_the_dotenv_protects_ingestion(tmp_path: Path, serve_in: list[Service]) -> None:
    (tmp_path / ".env").write_text("APP_INGEST_SECRET=dotenv-secret-5f1c9a\n")
    port = free_port()
    svc = _start(serve_in, tmp_path, port, "--port", str(port))
    assert httpx.post(f"{svc.url}/agent-runs", json=_run_001(), timeout=30).status_code == 401
    ok = httpx.post(
        f"{svc.url}/agent-runs",
        json=_run_001(),
        headers={"X-Ingest-Secret": "dotenv-secret-5f1c9a"},
        timeout=30,
    )
    assert ok.status_code == 201, ok.text
    log = svc.log.read_text()
    assert f"settings from {(tmp_path / '.env').resolve()}" in log
    assert "dotenv-secret-5f1c9a" not in log


def test_the_control_plane_seeds_env_starts_on_its_port_with_the_llm_off(
    tmp_path: Path, serve_in: list[Service]
) -> None:
    port = free_port()
    seed_env = (FIXTURES / "seed-env" / "control-plane.env").read_text()
    (tmp_path / ".env").write_text(seed_env.replace("PORT=9001", f"PORT={port}"))
    svc = _start(serve_in, tmp_path, port)  # no --port: the seed's PORT
    log = svc.log.read_text()
    warnings = [line for line in log.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "placeholder" in warnings[0] and "LLM off" in warnings[0], log
    assert "opslab: LLM off" in log and "your-key-here" not in log


def test_a_real_looking_key_alone_turns_the_llm_on_with_openai(
    tmp_path: Path, serve_in: list[Service]
) -> None:
    key = "sk-proj-4f9a2c7e1b8d3a6f0e5c"
    env = _seedless_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), OPENAI_API_KEY=key, LLM_MODEL="gpt-4")
    port = free_port()
    svc = _start(serve_in, tmp_path, port, "--port", str(port), env=env)
    log = svc.log.read_text()
    assert "opslab: LLM on: model gpt-4 at https://api.openai.com/v1" in log, log
    assert key not in log and "no .env file read" in log


def test_log_level_from_the_environment_quiets_the_start_up_lines(
    tmp_path: Path, serve_in: list[Service]
) -> None:
    env = _seedless_env(OPSLAB_DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="WARNING")
    port = free_port()
    svc = _start(serve_in, tmp_path, port, "--port", str(port), env=env)
    assert "INFO" not in svc.log.read_text()


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _seedless_env(OPSLAB_DATA_DIR=str(tmp_path / "data"))
        r = run_cli("serve", "--host", "127.0.0.1", "--port", str(port), env=env, timeout=60)
    assert r.returncode == 5, (r.returncode, r.stderr[-800:])
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is already in use" in lines[0], lines


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = _seedless_env(
        OPSLAB_DATA_DIR=str(tmp_path / "data"),
        DATABASE_URL=f"postgresql://user:pass@127.0.0.1:{free_port()}/db",
    )
    r = run_cli("serve", "--port", str(free_port()), env=env, timeout=60)
    assert r.returncode == 6, (r.returncode, r.stderr[-800:])
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "cannot be reached" in errors[0] and "pass" not in errors[0], r.stderr
    assert "Traceback" not in r.stderr
