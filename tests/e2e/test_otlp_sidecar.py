"""``opslab serve`` plans large OTLP exports on two cores: its sidecar is there from the start, a 2,000-span
export sent as an SDK sends it is stored whole, the sidecar dies with the service, and an export sent after
the sidecar was killed is stored whole too (the service plans it alone)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.e2e.conftest import Service, clean_env, wait_for

T0 = 1_763_900_000_000_000_000


def _export(first: int, traces: int) -> bytes:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for n in range(first, first + traces):
        trace, root = n.to_bytes(16, "big"), (n * 16 + 1).to_bytes(8, "big")
        for k in range(10):
            s = spans.add(trace_id=trace, span_id=(n * 16 + k + 1).to_bytes(8, "big"), name=f"step-{k}")
            if k:
                s.parent_span_id = root
            s.start_time_unix_nano, s.end_time_unix_nano = T0 + n * 10**6 + k, T0 + n * 10**6 + k + 500
            s.attributes.add(key="gen_ai.operation.name").value.string_value = "chat" if k else "invoke_agent"
    return req.SerializeToString()


def _children(pid: int) -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:  # noqa: PTH123
                stat = f.read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if int(rest[1]) == pid:
            found[int(entry)] = comm
    return found


def _cpu_ns(pid: int) -> int:
    """The process's time on a CPU so far, in nanoseconds (the scheduler's own count)."""
    with open(f"/proc/{pid}/schedstat") as f:  # noqa: PTH123
        return int(f.read().split()[0])


def _post(svc: Service, body: bytes) -> ExportTraceServiceResponse:
    r = httpx.post(
        svc.url + "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=60
    )
    assert r.status_code == 200, r.text
    return ExportTraceServiceResponse.FromString(r.content)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the sidecar is forked on machines of two CPUs or more")
def test_a_large_export_is_stored_whole_with_the_sidecar_and_after_it_is_gone(
    start_service: Callable[..., Service], tmp_path: Path
) -> None:
    svc = start_service(env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data")))
    sidecars = [pid for pid, comm in _children(svc.proc.pid).items() if comm == "opslab-ingest"]
    assert len(sidecars) == 1, _children(svc.proc.pid)
    off = start_service(env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "off"), OPSLAB_OTLP_SIDECAR="false"))
    assert "opslab-ingest" not in _children(off.proc.pid).values()

    before = _cpu_ns(sidecars[0])
    first = _post(svc, _export(1, 200))
    assert first.partial_success.rejected_spans == 0
    assert _cpu_ns(sidecars[0]) - before > 1_000_000  # it planned its share: milliseconds of work
    os.kill(sidecars[0], signal.SIGKILL)
    second = _post(svc, _export(201, 200))  # planned by the service alone from now on
    assert second.partial_success.rejected_spans == 0

    runs = wait_for(
        lambda: httpx.get(svc.url + "/agent-runs", params={"limit": 500}, timeout=10).json(),
        lambda page: len(page["items"]) == 400,
        30,
        "both exports' runs listed",
    )
    assert {r["run_id"] for r in runs["items"]} == {n.to_bytes(16, "big").hex() for n in range(1, 401)}
    trace = httpx.get(svc.url + f"/v1/traces/{(7).to_bytes(16, 'big').hex()}", timeout=10).json()
    assert len(trace["spans"]) == 10


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the sidecar is forked on machines of two CPUs or more")
def test_the_sidecar_dies_with_a_service_killed_alone(
    start_service: Callable[..., Service], tmp_path: Path
) -> None:
    svc = start_service(env=clean_env(OPSLAB_DATA_DIR=str(tmp_path / "data")))
    (sidecar,) = [pid for pid, comm in _children(svc.proc.pid).items() if comm == "opslab-ingest"]
    os.kill(svc.proc.pid, signal.SIGKILL)  # the service alone, not its process group
    svc.proc.wait(10)
    wait_for(lambda: os.path.exists(f"/proc/{sidecar}"), lambda there: not there, 10, "the sidecar gone")
