"""Shared fixtures: real SQLite and PostgreSQL, real Redis, real HTTP servers on free ports.

PostgreSQL and Redis come from ``OPSLAB_TEST_POSTGRES_URL`` / ``OPSLAB_TEST_REDIS_URL``. Absent, their
tests are skipped; with ``OPSLAB_TEST_REQUIRE_SERVICES=1`` (CI) a skip of that kind is a failure.
Each test session gets a database of its own on the PostgreSQL server, dropped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.engine import make_url

from opslab.config import Settings
from opslab.store import make_engine, upgrade
from opslab.store.engine import scratch_database
from opslab.store.tables import metadata

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REQUIRE = os.environ.get("OPSLAB_TEST_REQUIRE_SERVICES") == "1"
# What a bare machine (Python, pip and make) lacks: skipped there, run (and failing if absent) in CI.
needs_sandbox = pytest.mark.skipif(
    shutil.which("bwrap") is None and not REQUIRE,
    reason="lab trials of network none (the default) run in the trial sandbox: apt-get install bubblewrap",
)
needs_curl = pytest.mark.skipif(shutil.which("curl") is None and not REQUIRE, reason="needs curl")
# Property tests and API fuzzing: a sixth of their examples in the everyday run (`make test`, CI), the
# full count with HYPOTHESIS_PROFILE=deep (`make test-deep`).
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"


# How `make test` spreads the suite over its workers (``--dist loadgroup``, see ``ModulesTogether``): the
# tests of a module stay together on one worker, as with ``--dist loadfile`` (they may share a
# module-scoped world), except in the modules marked to spread below, whose tests are independent and each
# long (real windows, real processes, waits): those go one by one to whichever worker is free. The modules
# that wait the longest are handed out first (in this order, from the JUnit report's times), so none of them
# starts last and becomes the run's tail. Each entry: (module, spread).
LONGEST_FIRST: tuple[tuple[str, bool], ...] = (
    ("tests/integration/test_responder_outside_faults.py", True),
    ("tests/e2e/test_docs_first_steps.py", True),
    ("tests/integration/test_canary_sandbox.py", True),
    ("tests/e2e/test_autoops_cli.py", True),
    ("tests/e2e/test_cli_telemetry.py", True),
    ("tests/e2e/test_canary_crash.py", True),
    ("tests/integration/test_lab_rq_executor.py", False),
    ("tests/e2e/test_cli_ids_whole.py", True),
    ("tests/e2e/test_canary_cli.py", True),
    ("tests/e2e/test_dashboard.py", False),
    ("tests/e2e/test_lab_cli.py", False),
    ("tests/e2e/test_chaos_suite_cli.py", False),
    ("tests/integration/test_autoops_api.py", False),
    ("tests/dense/test_dense_retrieval.py", False),
    ("tests/integration/test_work_drills.py", False),
    ("tests/fuzz/test_openapi.py", False),
    ("tests/integration/test_canary_prometheus.py", False),
    ("tests/integration/test_canary_real_service.py", False),
    ("tests/integration/test_fault_drills.py", False),
    ("tests/e2e/test_responder_seed.py", False),
    ("tests/integration/test_responder_failover.py", False),
)
SPREAD = frozenset(module for module, spread in LONGEST_FIRST if spread)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: i for i, (path, _) in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: the groups are the modules, less those in ``SPREAD``. Decided here from each
    test's node id, not by ``xdist_group`` marks: xdist reads those by rewriting node ids, which pytest
    9.2's structured ids ignore (pytest-xdist#1386), and every module was silently spread, its world
    built on each worker."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if module in SPREAD else module

    # The groups in collection order (longest first, above), not reordered by their number of tests.
    config.option.loadscopereorder = False
    return ModulesTogether(config, log)


def examples(full: int) -> int:
    """How many examples a property test with ``full`` examples runs in this profile."""
    return full if DEEP else max(20, full // 6)


def need_service(var: str) -> str:
    url = os.environ.get(var)
    if not url:
        if REQUIRE:
            pytest.fail(f"{var} is not set but OPSLAB_TEST_REQUIRE_SERVICES=1")
        pytest.skip(f"{var} not set")
    return url


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@contextmanager
def fresh_postgres_database(prefix: str = "opslab_t") -> Iterator[str]:
    """A new database on the test PostgreSQL server, dropped afterwards; its URL."""
    server = need_service("OPSLAB_TEST_POSTGRES_URL")
    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(server, prefix))
        except Exception as exc:  # server down: a clear failure, not a hang
            shown = make_url(server).render_as_string(hide_password=True)
            if REQUIRE:
                pytest.fail(f"PostgreSQL at {shown} unusable: {exc}")
            pytest.skip(f"PostgreSQL unusable: {exc}")
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the test PostgreSQL server for this session (dropped afterwards)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = need_service("OPSLAB_TEST_REDIS_URL")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        if REQUIRE:
            pytest.fail(f"Redis at {url} unusable: {exc}")
        pytest.skip(f"Redis unusable: {exc}")
    return url


@pytest.fixture(scope="session")
def _pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every test using this runs twice: on a fresh SQLite file and on the (emptied) PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'opslab.db'}"
        return
    engine: Engine = request.getfixturevalue("_pg_engine")
    _truncate(engine)
    yield engine.url.render_as_string(hide_password=False)
    _truncate(engine)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url)


@pytest.fixture
def run_001() -> dict[str, Any]:
    return load_fixture("run-001-sufficient.json")


@pytest.fixture
def run_002() -> dict[str, Any]:
    return load_fixture("run-002-insufficient.json")
