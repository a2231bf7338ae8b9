"""A hostile harness against the real isolation, run by root as in containers and CI: what it reaches
in each mode (docs/security.md, "The lab's trials", names these tests row by row).

The harness (fixtures/lab/isolation/hostile.py) tries, as its task says: the host's loopback and Unix
sockets, other runs' proxy sockets, setns(2) into every process it can see (its ancestors included),
/proc/*/root, ptrace and signals to the runner and to another root process, mount, unshare, writes to
system files and sysctls, a fork bomb, and leaking a secret into every file it can write."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opslab.lab import load_outputs, run_experiment
from opslab.lab.isolation import RunScratch
from opslab.lab.publish import publish_run
from opslab.lab.secrets import forms
from tests.conftest import FIXTURES, REQUIRE
from tests.e2e.conftest import OPSLAB

HERE = FIXTURES / "lab" / "isolation"
ROOT = os.geteuid() == 0
needs_sandbox = pytest.mark.skipif(
    (shutil.which("bwrap") is None or shutil.which("busybox") is None) and not REQUIRE,
    reason="bubblewrap and busybox-static are not installed",
)
pytestmark = needs_sandbox
SECRET = 'Qu"o\\te€-x7f3a9c'  # a quote, a backslash and a non-ASCII character
HOST_SECRET = "Zk8Qm2Lp9Xv4Tn"  # one a harness builds a host name from
ESCAPES = ("net", "setns", "proc_root", "ptrace", "signal", "caps", "kernel")


class Host:
    """What a trial must not reach: a loopback port, a Unix socket and a marker file of the host, another
    run's proxy socket, and a root process (the victim) besides the runner itself."""

    def __init__(self, tmp: Path) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.usock = str(tmp / "host.sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.usock)
        self.marker = tmp / "host-marker.txt"
        self.marker.write_text("host")
        self.other_run = RunScratch()  # another run's private folder, its proxy listening
        self.proxy = socket.socket(socket.AF_UNIX)
        self.proxy.bind(self.other_run.file("proxy.sock"))
        self.decoy_dir = tempfile.mkdtemp(prefix="opslab-egress-")  # where older runners put theirs
        self.decoy = socket.socket(socket.AF_UNIX)
        self.decoy.bind(os.path.join(self.decoy_dir, "proxy.sock"))
        for s in (self.tcp, self.unix, self.proxy, self.decoy):
            s.listen(64)
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        self.victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])

    @staticmethod
    def _accept(s: socket.socket) -> None:
        while True:
            try:
                s.accept()[0].close()
            except OSError:
                return

    def task(self, probes: tuple[str, ...], **extra: Any) -> dict[str, Any]:
        return {
            "task_id": "h",
            "probes": list(probes),
            "port": self.port,
            "usock": self.usock,
            "marker": str(self.marker),
            "victims": [self.victim.pid, os.getpid()],
            "runner": os.getpid(),
            **extra,
        }

    def close(self) -> None:
        self.victim.kill()
        self.victim.wait()
        for s in (self.tcp, self.unix, self.proxy, self.decoy):
            s.close()
        self.other_run.close()
        shutil.rmtree(self.decoy_dir, ignore_errors=True)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path)
    yield h
    h.close()


def project(tmp_path: Path, tasks: list[dict[str, Any]], **runtime: Any) -> Path:
    proj = tmp_path / "proj"
    (proj / ".lab").mkdir(parents=True, exist_ok=True)
    (proj / "data").mkdir(exist_ok=True)
    shutil.copy(HERE / "hostile.py", proj)
    (proj / "data" / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    rt = {"harness": {"command": ["python3", "./hostile.py"], "integration_level": "cli_events"}, **runtime}
    experiment = {
        "experiment": {"id": "hostile", "name": "hostile"},
        "dataset": {"path": "../data/tasks.jsonl"},
        "design": {"replications": 1, "random_seed": 1, "trial_timeout_s": 120},
        "runtime": rt,
        "variants": {"baseline": {"id": "control", "bindings": {}}},
    }
    (proj / ".lab" / "experiment.yaml").write_text(json.dumps(experiment))
    return proj


def run(proj: Path, env: dict[str, str] | None = None, **kwargs: Any) -> tuple[Path, list[dict[str, Any]]]:
    lab_run = run_experiment(
        proj / ".lab" / "experiment.yaml", env_base={**os.environ, **(env or {})}, **kwargs
    )
    ids = sorted(p.name for p in (lab_run.run_dir / "trials").iterdir() if p.is_dir())
    records = load_outputs(lab_run.run_dir, ids)
    assert all(r.outcome == "success" for r in records), [r.error for r in records]
    return lab_run.run_dir, [r.result for r in records]  # type: ignore[misc]


def assert_contained(result: dict[str, Any], host: Host) -> None:
    """What every sandboxed trial must show, whatever its network."""
    assert result["caps"]["CapEff"] == result["caps"]["CapPrm"] == "0000000000000000"
    assert result["caps"]["CapBnd"] == result["caps"]["CapAmb"] == "0000000000000000"
    assert result["caps"]["NoNewPrivs"] == "1" and result["caps"]["Seccomp"] == "2"
    assert result["tcp"] is False and result["unix"] is False, "the host's loopback and Unix sockets"
    assert result["sockets_reached"] == [], "another run's proxy socket"
    assert result["setns_joined"] == [] and result["netns_still_own"] is True
    assert result["tcp_after_setns"] is False and result["unix_after_setns"] is False
    assert result["proc_root_read"] == [] and result["marker_visible"] is False, "/proc/*/root"
    assert result["ptrace_attached"] == [] and result["ptrace_self"] == "EPERM"
    assert set(result["signals"].values()) == {"ESRCH"} and result["runner_visible"] is False
    assert host.victim.poll() is None, "a root process of the host was signalled"
    assert result["mount_tmpfs"] == result["remount_usr_rw"] == "EPERM"
    assert result["unshare_user"] == result["unshare_net"] == "EPERM"
    assert all(code != 0 for code in result["writes"].values()), result["writes"]
    assert result["shadow_readable"] is False


@pytest.mark.parametrize("network", ["none", "allowlist_enforced"])
def test_a_root_trial_of_an_isolated_network_reaches_nothing_of_the_host(
    tmp_path: Path, host: Host, network: str
) -> None:
    hosts = ["example.invalid"] if network == "allowlist_enforced" else []
    proj = project(tmp_path, [host.task(ESCAPES)], network={"mode": network, "allowed_hosts": hosts})
    _, (result,) = run(proj)
    assert_contained(result, host)
    assert host.marker.read_text() == "host"


def test_an_allowed_name_that_resolves_to_the_hosts_loopback_is_refused_by_address(
    tmp_path: Path, host: Host
) -> None:
    urls = [f"http://localhost:{host.port}/", f"http://LocalHost:{host.port}/x"]
    proj = project(
        tmp_path,
        [host.task(("via_proxy",), urls=urls)],
        network={"mode": "allowlist_enforced", "allowed_hosts": ["localhost", "*.localhost"]},
    )
    run_dir, (result,) = run(proj)
    assert set(result["via_proxy"].values()) == {403}, result
    decisions = [json.loads(line) for line in (run_dir / "egress.jsonl").read_text().splitlines()]
    assert [(d["allowed"], d["address_class"]) for d in decisions] == [(False, "loopback")] * 2
    assert {d["address"] for d in decisions} <= {"127.0.0.1", "::1"}


@pytest.mark.skipif(not ROOT, reason="the pids limit is the root runner's (a user keeps its own limit)")
def test_a_fork_bomb_stops_at_the_pids_limit_and_the_trial_still_ends(tmp_path: Path, host: Host) -> None:
    proj = project(
        tmp_path,
        [host.task(("fork_bomb",), fork_cap=5000)],
        network={"mode": "none"},
        sandbox={"pids_limit": 64},
    )
    _, (result,) = run(proj)
    assert result["fork_stopped_by"] == "EAGAIN" and 16 < result["forked"] < 64


@pytest.mark.parametrize("concurrency", [1, 2])  # the runner's threads (setpriv); forked workers (prctl)
def test_a_trial_on_the_host_network_runs_without_capabilities(
    tmp_path: Path, host: Host, concurrency: int
) -> None:
    # Only the runner and a root process: trials on the host share its user and may trace each other.
    tasks = [
        {**host.task(("caps", "setns", "ptrace"), only_victims=True), "task_id": f"h{i}"} for i in range(2)
    ]
    proj = project(tmp_path, tasks, network={"mode": "full"})
    _, results = run(proj, concurrency=concurrency)
    for result in results:
        assert result["caps"]["CapEff"] == result["caps"]["CapBnd"] == "0000000000000000"
        assert result["caps"]["NoNewPrivs"] == "1"
        assert result["setns_joined"] == [] and result["netns_still_own"] is True
        assert (
            host.victim.pid not in result["ptrace_attached"] and os.getpid() not in result["ptrace_attached"]
        )


def _leaks(folder: Path, secrets: dict[str, str]) -> list[str]:
    needles = {f for s in secrets.values() for f in forms(s)}
    needles |= {s.lower() for s in secrets.values()}
    found = []
    for path in folder.rglob("*"):
        if any(n in path.name for n in needles):
            found.append(f"name {path.relative_to(folder)}")
        if path.is_file() and not path.is_symlink():
            text = path.read_bytes().decode("utf-8", "replace")
            found += [f"{path.relative_to(folder)}" for n in needles if n in text or n in text.lower()]
    return sorted(set(found))


def test_a_secret_reaches_no_file_of_the_run_nor_its_bundle(tmp_path: Path, host: Host) -> None:
    secrets = {"HOSTILE_SECRET": SECRET, "HOSTILE_HOST": HOST_SECRET}
    proj = project(
        tmp_path,
        [host.task(("secret",), proxy="leak.test")],
        network={"mode": "allowlist_enforced", "allowed_hosts": ["*.leak.test"]},
        env_allow=sorted(secrets),
    )
    run_dir, (result,) = run(proj, env=secrets)
    assert result["seen"] is True and result["echo"] == "[REDACTED:HOSTILE_SECRET]"
    egress = [json.loads(line) for line in (run_dir / "egress.jsonl").read_text().splitlines()]
    assert [d["allowed"] for d in egress] == [False] and egress[0]["host"].endswith(".leak.test")
    assert _leaks(run_dir, secrets) == []
    bundle = publish_run(run_dir, output=tmp_path / "bundle.tar.gz", env=secrets)
    with tarfile.open(bundle.path) as tar:
        tar.extractall(tmp_path / "bundle", filter="data")
    assert _leaks(tmp_path / "bundle", secrets) == [] and bundle.files > 5


@pytest.mark.parametrize("network", ["none", "full"])
def test_a_root_trial_cannot_change_its_image(tmp_path: Path, network: str) -> None:
    image = tmp_path / "image"
    for d in ("bin", "usr", "etc"):
        (image / d).mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "", image / "bin" / "busybox")
    for tool in ("sh", "touch", "mount", "echo", "cat", "mkdir"):
        (image / "bin" / tool).symlink_to("busybox")
    (image / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (image / "etc" / "resolv.conf").write_text("nameserver 127.0.0.53\n")
    before = sorted(str(p.relative_to(image)) for p in image.rglob("*"))
    hosts_on_host = Path("/etc/hosts").read_bytes()
    proj = project(tmp_path, [{"task_id": "t"}], network={"mode": network}, sandbox={"image": str(image)})
    (proj / "image.sh").write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 0 ]; do case "$1" in --output) out="$2"; shift 2;; *) shift;; esac; done\n'
        "mount -o remount,rw / 2>/dev/null; mount -o remount,rw /usr 2>/dev/null\n"
        "for f in /usr/probe /bin/probe /probe /etc/probe; do touch $f 2>/dev/null; done\n"
        "echo '6.6.6.6 evil' >> /etc/hosts 2>/dev/null\n"
        "echo 'nameserver 6.6.6.6' > /etc/resolv.conf 2>/dev/null\n"
        'echo \'{"outcome": "success"}\' > "$out"\n'
    )
    exp = json.loads((proj / ".lab" / "experiment.yaml").read_text())
    exp["runtime"]["harness"] = {"command": ["/bin/sh", "./image.sh"]}
    (proj / ".lab" / "experiment.yaml").write_text(json.dumps(exp))
    run(proj, container=True)
    assert sorted(str(p.relative_to(image)) for p in image.rglob("*")) == before
    assert (image / "etc" / "hosts").read_text() == "127.0.0.1 localhost\n"
    assert Path("/etc/hosts").read_bytes() == hosts_on_host  # bound read-only over the image's in full


def test_a_runner_killed_with_9_leaves_nothing_the_next_run_does_not_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # A temporary directory of this test's own (TMPDIR for the runner, tempfile's for the sweeping run
    # here): the runs of tests on other workers keep their live folders in the system's. Short: the
    # proxy's Unix socket path inside must fit in 108 bytes.
    temp = Path(tempfile.mkdtemp(prefix="t9-"))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    request.addfinalizer(lambda: shutil.rmtree(temp, ignore_errors=True))
    before = set(temp.glob("opslab-run-*"))
    hold = tmp_path / "hold"
    hold.touch()
    proj = project(
        tmp_path,
        [{"task_id": "t", "probes": []}],
        network={"mode": "allowlist_enforced", "allowed_hosts": ["x.test"]},
    )
    (proj / "wait.sh").write_text(f"#!/bin/sh\nwhile [ -e {hold} ]; do sleep 0.05; done\n")
    exp = json.loads((proj / ".lab" / "experiment.yaml").read_text())
    exp["runtime"]["harness"]["command"] = ["sh", "./wait.sh"]  # never visible: the trial waits forever
    exp["runtime"]["sandbox"] = {"read_only": [str(tmp_path)]}
    (proj / ".lab" / "experiment.yaml").write_text(json.dumps(exp))
    runner = subprocess.Popen(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--json"],
        cwd=proj,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    deadline = time.monotonic() + 120
    while not (set(temp.glob("opslab-run-*")) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = set(temp.glob("opslab-run-*")) - before
    assert left, "the run made no private folder"
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    hold.unlink()
    assert all(p.exists() for p in left)  # kill -9: nobody removed it
    sweeper = project(tmp_path / "next", [{"task_id": "t", "probes": []}], network={"mode": "none"})
    run(sweeper)
    assert not any(p.exists() for p in left)


def test_without_bubblewrap_an_isolated_run_is_refused_naming_the_layer(tmp_path: Path) -> None:
    proj = project(tmp_path, [{"task_id": "t", "probes": []}], network={"mode": "none"})
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    out = subprocess.run(
        [OPSLAB, "lab", "run", ".lab/experiment.yaml", "--json"],
        cwd=proj,
        env={**env, "PATH": str(tmp_path / "empty")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    envelope = json.loads(out.stdout)
    assert out.returncode != 0 and envelope["ok"] is False
    assert "bubblewrap" in envelope["error"]["message"] and "\n" not in envelope["error"]["message"]
    assert not (proj / ".lab" / "runs").exists()


def test_secrets_in_base64_and_url_forms_are_found_in_the_harness_files(tmp_path: Path, host: Host) -> None:
    proj = project(tmp_path, [host.task(())], network={"mode": "none"}, env_allow=["HOSTILE_SECRET"])
    (proj / "hostile.py").write_text(
        "import argparse, base64, json, os, urllib.parse\n"
        "ap = argparse.ArgumentParser(); ap.add_argument('--input'); ap.add_argument('--output')\n"
        "a = ap.parse_args(); s = os.environ['HOSTILE_SECRET']; b64 = base64.b64encode(s.encode()).decode()\n"
        "print(base64.b64encode(('user:' + s).encode()).decode(), urllib.parse.quote(s), s.encode().hex())\n"
        "json.dump({'outcome': 'success', 'result': {'b64': b64}}, open(a.output, 'w'))\n"
    )
    run_dir, (result,) = run(proj, env={"HOSTILE_SECRET": SECRET})
    stdout = next(run_dir.glob("trials/*/out/stdout.log")).read_text()
    assert base64.b64encode(("user:" + SECRET).encode()).decode()[8:20] not in stdout
    assert "REDACTED" in stdout and "REDACTED" in result["b64"]
