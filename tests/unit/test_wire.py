"""The wire layer: a client of the service loads the shapes it exchanges, not the engines behind them."""

from __future__ import annotations

import subprocess
import sys

from opslab import rca, wire


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def test_importing_the_client_loads_no_engine() -> None:
    loaded = _loaded_after("import opslab.client")
    engines = {"numpy", "scipy", "duckdb", "langgraph", "sqlalchemy", "fastapi", "rq"}
    capabilities = {f"opslab.{name}" for name in ("rca", "lab", "canary", "responder", "autoops", "jobs")}
    assert not loaded & (engines | capabilities), sorted(loaded & (engines | capabilities))


def test_the_rca_package_speaks_the_wires_report() -> None:
    # One report type on both sides: what the engine writes is what a client reads back.
    assert rca.RcaReport is wire.RcaReport and rca.RcaRunView is wire.RcaRunView
