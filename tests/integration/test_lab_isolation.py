"""Trial isolation for real, on this machine: network namespaces, the egress proxy, bubblewrap over an
image's root filesystem (a directory, a flat export, a saved image), run-dev's setup, env_allow."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opslab.errors import InvalidInput, PolicyViolation, Unavailable
from opslab.lab import load_outputs, run_experiment
from opslab.lab.isolation import netns
from tests.conftest import FIXTURES, REQUIRE

HERE = FIXTURES / "lab" / "isolation"
# Skipped where the machine lacks them; under OPSLAB_TEST_REQUIRE_SERVICES=1 (CI installs them) they run
# and fail instead.
needs_netns = pytest.mark.skipif(
    netns.probe() is not None and not REQUIRE, reason="no network namespaces here"
)
needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None and not REQUIRE, reason="bubblewrap is not installed"
)
needs_busybox = pytest.mark.skipif(
    shutil.which("busybox") is None and not REQUIRE, reason="busybox is not installed"
)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[int, int]]:
    """Two HTTP servers on the host's loopback."""
    started = [ThreadingHTTPServer(("127.0.0.1", 0), _Ok) for _ in range(2)]
    for s in started:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield started[0].server_address[1], started[1].server_address[1]
    for s in started:
        s.shutdown()


def make_project(tmp_path: Path, *, network: str, tasks: list[dict[str, object]], **runtime: object) -> Path:
    proj = tmp_path / "proj"
    (proj / ".lab").mkdir(parents=True)
    (proj / "data").mkdir()
    shutil.copy(HERE / "net_harness.py", proj)
    shutil.copy(HERE / "box_harness.sh", proj)
    (proj / "data" / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    experiment = {
        "experiment": {"id": f"iso_{network}", "name": "isolation"},
        "dataset": {"path": "../data/tasks.jsonl"},
        "design": {"replications": 1, "random_seed": 1, "trial_timeout_s": 30},
        "runtime": {
            "harness": {"command": runtime.pop("command", ["python3", "./net_harness.py"])},
            "network": {"mode": network, "allowed_hosts": runtime.pop("allowed_hosts", [])},
            **runtime,
        },
        "variants": {"baseline": {"id": "control", "bindings": {}}},
    }
    (proj / ".lab" / "experiment.yaml").write_text(json.dumps(experiment))
    return proj


def results(proj: Path, **kwargs: object) -> list[dict[str, object]]:
    run = run_experiment(proj / ".lab" / "experiment.yaml", env_base=dict(os.environ), **kwargs)  # type: ignore[arg-type]
    ids = sorted(p.name for p in (run.run_dir / "trials").iterdir() if p.is_dir())
    records = load_outputs(run.run_dir, ids)
    assert all(r.outcome == "success" for r in records), [r.error for r in records]
    return [r.result for r in records]  # type: ignore[misc]


@needs_netns
@pytest.mark.parametrize(
    ("mode", "reaches"), [pytest.param("none", False, marks=needs_bwrap), ("full", True)]
)
def test_network_none_cannot_reach_the_hosts_loopback_and_full_can(
    tmp_path: Path, servers: tuple[int, int], mode: str, reaches: bool
) -> None:
    port = servers[0]
    proj = make_project(
        tmp_path, network=mode, tasks=[{"task_id": "t", "urls": {"a": f"http://127.0.0.1:{port}/"}}]
    )
    (result,) = results(proj)
    assert (result["reached"]["a"] == 200) is reaches, result  # type: ignore[index]


@needs_netns
@needs_bwrap
def test_allowlist_reaches_an_allowed_host_through_the_proxy_and_not_a_forbidden_one(
    tmp_path: Path, servers: tuple[int, int]
) -> None:
    allowed, forbidden = servers
    urls = {"allowed": f"http://127.0.0.1:{allowed}/", "forbidden": f"http://127.0.0.1:{forbidden}/"}
    proj = make_project(
        tmp_path,
        network="allowlist_enforced",
        allowed_hosts=[f"127.0.0.1:{allowed}"],
        tasks=[{"task_id": "t", "urls": urls}],
    )
    (result,) = results(proj)
    assert result["reached"] == {"allowed": 200, "forbidden": 403}, result
    assert result["proxy"] == "http://127.0.0.1:3128"
    run_dir = next((proj / ".lab" / "runs").iterdir())
    decisions = [json.loads(line) for line in (run_dir / "egress.jsonl").read_text().splitlines()]
    assert {(d["port"], d["allowed"]) for d in decisions} == {(allowed, True), (forbidden, False)}
    isolation = json.loads((run_dir / "manifest.json").read_text())["isolation"]
    assert isolation["network_enforced"] is True and "proxy" in isolation["network_mechanism"]


@needs_netns
def test_full_reaches_both_servers(tmp_path: Path, servers: tuple[int, int]) -> None:
    urls = {"a": f"http://127.0.0.1:{servers[0]}/", "b": f"http://127.0.0.1:{servers[1]}/"}
    proj = make_project(tmp_path, network="full", tasks=[{"task_id": "t", "urls": urls}])
    (result,) = results(proj)
    assert result["reached"] == {"a": 200, "b": 200}


def test_allowlist_without_hosts_is_refused(tmp_path: Path) -> None:
    proj = make_project(tmp_path, network="allowlist_enforced", tasks=[{"task_id": "t", "urls": {}}])
    with pytest.raises(InvalidInput, match="allowed_hosts"):
        run_experiment(proj / ".lab" / "experiment.yaml", env_base=dict(os.environ))
    assert not (proj / ".lab" / "runs").exists()


@needs_netns
@needs_bwrap
def test_env_allow_passes_a_secret_and_no_artifact_holds_it(tmp_path: Path) -> None:
    proj = make_project(
        tmp_path, network="none", env_allow=["LAB_API_KEY"], tasks=[{"task_id": "t", "urls": {}}]
    )
    env = {**os.environ, "LAB_API_KEY": "sk-test-0123456789"}
    run = run_experiment(proj / ".lab" / "experiment.yaml", env_base=env)
    (record,) = (
        load_outputs(run.run_dir, ["trial_1"])
        if (run.run_dir / "trials" / "trial_1").exists()
        else (
            load_outputs(
                run.run_dir, [next(p.name for p in (run.run_dir / "trials").iterdir() if p.is_dir())]
            )
        )
    )
    assert record.result["secret_seen"] is True  # type: ignore[index]
    assert record.result["secret_echo"] == "[REDACTED:LAB_API_KEY]"  # type: ignore[index]
    for path in run.run_dir.rglob("*"):
        if path.is_file():
            assert b"sk-test-0123456789" not in path.read_bytes(), path


# --- containers: bubblewrap over an image's root filesystem ---


def busybox_rootfs(root: Path) -> Path:
    """A real, tiny root filesystem: static busybox and its applets."""
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy(shutil.which("busybox") or "", root / "bin" / "busybox")
    for applet in ("sh", "nc", "printf", "grep", "cat", "pwd", "mkdir", "touch", "echo"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "opslab-test-rootfs").write_text("yes\n")
    return root


def box_project(tmp_path: Path, image: str, network: str, port: int) -> Path:
    proj = make_project(
        tmp_path,
        network=network,
        command=["sh", "./box_harness.sh"],
        sandbox={"image": image},
        tasks=[{"task_id": "t1"}, {"task_id": "t2"}],
    )
    (proj / "port.txt").write_text(str(port))
    return proj


@needs_bwrap
@needs_busybox
@needs_netns
@pytest.mark.parametrize(("network", "reaches"), [("none", False), ("full", True)])
def test_the_daemonless_backend_runs_the_harness_in_the_image(
    tmp_path: Path, servers: tuple[int, int], network: str, reaches: bool
) -> None:
    busybox_rootfs(tmp_path / "image")
    proj = box_project(tmp_path, str(tmp_path / "image"), network, servers[0])
    for result in results(proj, container=True):
        assert result["in_image"] is True and result["cwd"] == "/workspace"
        assert result["input"] == "/out/trial_input.json"
        assert result["reached"] is reaches
    manifest = json.loads(next((proj / ".lab" / "runs").glob("*/manifest.json")).read_text())
    assert manifest["isolation"]["sandbox"] == "container"
    assert manifest["isolation"]["sandbox_backend"] == "rootfs"


@needs_bwrap
@needs_busybox
def test_run_without_container_leaves_the_image_alone(tmp_path: Path, servers: tuple[int, int]) -> None:
    busybox_rootfs(tmp_path / "image")
    proj = box_project(tmp_path, str(tmp_path / "image"), "full", servers[0])
    for result in results(proj):  # the seed's `run`: local unless --container
        assert result["in_image"] is False and result["cwd"] != "/workspace"
    manifest = json.loads(next((proj / ".lab" / "runs").glob("*/manifest.json")).read_text())
    assert manifest["isolation"]["sandbox"] == "local" and manifest["isolation"]["container_image"] is None


@needs_bwrap
@needs_busybox
@needs_netns
def test_an_image_inside_the_project_is_left_out_of_every_workspace(
    tmp_path: Path, servers: tuple[int, int]
) -> None:
    proj = box_project(tmp_path, "image", "none", servers[0])
    busybox_rootfs(proj / "image")
    for result in results(proj, container=True):
        assert result["in_image"] is True and result["cwd"] == "/workspace"
    workspaces = list((proj / ".lab" / "runs").glob("*/trials/*/workspace"))
    assert len(workspaces) == 2
    assert all((ws / "box_harness.sh").is_file() and not (ws / "image").exists() for ws in workspaces)


def _tar_dir(src: Path, arcname: str = ".") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src, arcname=arcname)
    return buf.getvalue()


@needs_bwrap
@needs_busybox
@needs_netns
def test_image_tarballs_flat_and_layered_are_unpacked_once(tmp_path: Path, servers: tuple[int, int]) -> None:
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    flat = tmp_path / "flat.tar.gz"
    with tarfile.open(flat, "w:gz") as tar:
        tar.add(rootfs, arcname=".")
    # A saved image: two layers, the second deletes a file of the first with a whiteout.
    (rootfs / "etc" / "stale").write_text("deleted by layer 2")
    layer1 = _tar_dir(rootfs)
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / ".wh.stale").write_text("")
    layer2 = _tar_dir(upper)
    saved = tmp_path / "saved.tar"
    with tarfile.open(saved, "w") as tar:
        for name, data in (("l1/layer.tar", layer1), ("l2/layer.tar", layer2)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        listing = json.dumps(
            [{"Config": "c.json", "RepoTags": [], "Layers": ["l1/layer.tar", "l2/layer.tar"]}]
        )
        info = tarfile.TarInfo("manifest.json")
        info.size = len(listing)
        tar.addfile(info, io.BytesIO(listing.encode()))
    for image in (flat, saved):
        proj_dir = tmp_path / image.stem
        proj_dir.mkdir()
        proj = box_project(proj_dir, str(image), "none", servers[0])
        assert all(r["in_image"] is True for r in results(proj, container=True))
        (unpacked,) = (proj / ".lab" / "images").iterdir()
        assert (unpacked / "bin" / "busybox").is_file()
        assert not (unpacked / "etc" / "stale").exists()


@needs_bwrap
@needs_busybox
@needs_netns
def test_run_dev_runs_setup_in_the_container_and_trials_start_from_it(
    tmp_path: Path, servers: tuple[int, int]
) -> None:
    busybox_rootfs(tmp_path / "image")
    proj = box_project(tmp_path, str(tmp_path / "image"), "none", servers[0])
    setup = "sh -c 'mkdir -p deps && touch deps/installed.txt'"
    for result in results(proj, mode="run-dev", setup=setup):
        assert result["deps"] is True and result["reached"] is True  # run-dev: network forced to full
    assert not (proj / "deps").exists()  # the project itself is untouched


@needs_bwrap
@needs_busybox
def test_a_failing_setup_refuses_the_run_and_leaves_nothing(tmp_path: Path) -> None:
    busybox_rootfs(tmp_path / "image")
    proj = box_project(tmp_path, str(tmp_path / "image"), "full", 1)
    with pytest.raises(Exception, match="setup command"):
        run_experiment(
            proj / ".lab" / "experiment.yaml",
            env_base=dict(os.environ),
            mode="run-dev",
            setup="sh -c 'exit 3'",
        )
    assert list((proj / ".lab" / "runs").iterdir()) == []


def test_container_runs_without_an_image_are_refused(tmp_path: Path) -> None:
    proj = make_project(tmp_path, network="none", tasks=[{"task_id": "t", "urls": {}}])
    for kwargs in ({"mode": "run-experiment"}, {"mode": "run-dev"}, {"container": True}):
        with pytest.raises(InvalidInput, match="runtime.sandbox.image"):
            run_experiment(proj / ".lab" / "experiment.yaml", env_base=dict(os.environ), **kwargs)  # type: ignore[arg-type]
    full = make_project(tmp_path / "f", network="full", tasks=[{"task_id": "t", "urls": {}}])
    with pytest.raises(PolicyViolation, match="requires 'none'"):
        run_experiment(full / ".lab" / "experiment.yaml", env_base=dict(os.environ), mode="run-experiment")


def test_an_image_for_an_engine_that_cannot_run_here_is_refused(tmp_path: Path) -> None:
    from opslab import proc

    engines = [e for e in ("podman", "docker") if shutil.which(e)]
    if engines and proc.run([engines[0], "info"], timeout_s=20).ok:
        pytest.skip(f"{engines[0]} runs containers here")
    proj = make_project(
        tmp_path, network="none", sandbox={"image": "python:3.11-slim"}, tasks=[{"task_id": "t", "urls": {}}]
    )
    with pytest.raises(Unavailable, match="podman or docker|cannot run containers"):
        run_experiment(proj / ".lab" / "experiment.yaml", env_base=dict(os.environ), container=True)
    assert not (proj / ".lab" / "runs").exists()


def test_the_private_network_has_its_own_loopback(tmp_path: Path) -> None:
    if netns.probe() is not None:
        pytest.skip("no network namespaces here")
    # A harness may serve itself on 127.0.0.1 inside its namespace: lo is up.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    code = (
        f"import socket,sys;s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen();"
        f"c=socket.create_connection(('127.0.0.1',{port}));sys.exit(0)"
    )
    from opslab import proc

    res = proc.run(["python3", "-c", code], timeout_s=10, pre_exec=netns.enter_private_network)
    assert res.ok


OTEL_HARNESS = """
import argparse, json
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

p = argparse.ArgumentParser(); p.add_argument("--input"); p.add_argument("--output"); a = p.parse_args()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))  # endpoint from the environment
tracer = provider.get_tracer("harness")
with tracer.start_as_current_span("invoke_agent solver") as root:
    root.set_attribute("gen_ai.operation.name", "invoke_agent")
    with tracer.start_as_current_span("chat model") as chat:
        chat.set_attribute("gen_ai.operation.name", "chat")
provider.shutdown()
json.dump({"outcome": "success"}, open(a.output, "w"))
"""


@needs_netns
@pytest.mark.parametrize(
    "network",
    [pytest.param("none", marks=needs_bwrap), pytest.param("allowlist_enforced", marks=needs_bwrap), "full"],
)
def test_otel_spans_reach_the_runner_from_every_network_mode(tmp_path: Path, network: str) -> None:
    import sys

    proj = make_project(
        tmp_path,
        network=network,
        allowed_hosts=["example.invalid"] if network == "allowlist_enforced" else [],
        command=[sys.executable, "./otel_harness.py"],
        tasks=[{"task_id": "t"}],
    )
    (proj / "otel_harness.py").write_text(OTEL_HARNESS)
    exp = json.loads((proj / ".lab" / "experiment.yaml").read_text())
    exp["runtime"]["harness"]["integration_level"] = "otel"
    (proj / ".lab" / "experiment.yaml").write_text(json.dumps(exp))
    run = run_experiment(proj / ".lab" / "experiment.yaml", env_base=dict(os.environ))
    (record,) = load_outputs(run.run_dir, ["trial_1"])
    assert record.outcome == "success", record.error
    assert record.event_counts.get("llm_call") == 1 and record.event_counts.get("agent") == 1, (
        record.event_counts
    )
    assert (run.run_dir / "trials" / "trial_1" / "out" / "otel_spans.jsonl").is_file()


def _working_engine() -> str | None:
    from opslab import proc

    for engine in ("podman", "docker"):
        if shutil.which(engine) and proc.run([engine, "info"], timeout_s=20).ok:
            return engine
    return None


def test_the_oci_engine_backend_passes_secrets_by_name_and_mounts_the_trial(tmp_path: Path) -> None:
    from opslab.lab.isolation import IsolationPlan

    plan = IsolationPlan("none", [], "oci", "python:3.12-slim", "cli_basic", engine="podman")
    launch = plan.launch(
        ["python", "h.py", "--input", "/out/trial_input.json"],
        ws="/runs/t/workspace",
        out_dir="/runs/t/out",
        env={"PATH": "/usr/bin", "HOME": "/h", "API_KEY": "sk-secret-value"},
        trial_id="trial_1",
    )
    assert launch.argv[:6] == ["podman", "run", "--rm", "--network", "none", "--workdir"]
    assert "-v" in launch.argv and "/runs/t/workspace:/workspace" in launch.argv
    assert "/runs/t/out:/out" in launch.argv and "API_KEY" in launch.argv
    assert not any("sk-secret-value" in a for a in launch.argv)  # values travel in the environment only
    assert launch.env["API_KEY"] == "sk-secret-value" and launch.pre_exec is None


@pytest.mark.skipif(
    _working_engine() is None,
    reason="no OCI engine runs containers here (podman run fails under crun with hybrid cgroups; docker has "
    "no daemon): the daemonless backend is tested instead",
)
def test_the_oci_engine_backend_runs_a_harness(tmp_path: Path) -> None:
    engine = _working_engine()
    assert engine
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    image = f"localhost/opslab-test-busybox:{os.getpid()}"
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(rootfs, arcname=".")
    from opslab import proc

    assert proc.run([engine, "import", str(tarball), image], timeout_s=120).ok
    proj = box_project(tmp_path, image, "none", 1)
    for result in results(proj, container=True):
        assert result["in_image"] is True and result["cwd"] == "/workspace"
