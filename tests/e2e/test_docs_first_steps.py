"""Each capability page's first steps, run as a newcomer runs them: from a copy of the repository's
``examples/``, on a fresh data dir, one line after another in a shell.

A page marks its first steps with ``<!-- first-steps … -->`` on the line before a ``bash`` block. The lines
run as written, but for the ports: this machine runs other services, so each default port of the docs
(8000 for ``opslab serve``, 8100… for ``opslab sandbox up``) becomes a free one — in the lines, in the copied
examples, in ``PORT`` for ``opslab serve`` and as options of ``opslab sandbox up``. A line ending in ``&``
runs in the background until the page is done; the next line starts when its service answers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from opslab.config import seed_aliases
from tests.conftest import needs_sandbox
from tests.e2e.conftest import OPSLAB, clean_env
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
CAPABILITY_PAGES = ("telemetry", "rca", "lab", "canary", "responder", "autoops", "knowledge")
MARK = "<!-- first-steps"
DEFAULT_PORTS = (8000, 8100, 8101, 8180, 8190)
# docs/canary.md "Exit codes": a canary's verdict is its exit code (PASS 0, EDGE 10, FAIL 11).
VERDICTS = {"opslab canary run": {0, 10, 11}}


def first_steps(page: Path) -> list[str]:
    """The command lines of the page's marked block (continuations joined, comments left to the shell)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(MARK)]
    assert len(marks) == 1, f"{page.name}: {len(marks)} first-steps marks"
    assert lines[marks[0] + 1].strip() == "```bash", f"{page.name}: the mark is not followed by a bash block"
    commands: list[str] = []
    pending = ""
    for line in lines[marks[0] + 2 :]:
        if line.strip().startswith("```"):
            break
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        if (pending + line).strip():
            commands.append(pending + line.strip())
        pending = ""
    return commands


def without_comment(line: str) -> str:
    return re.sub(r"\s+#\s.*$", "", line).strip()


class Newcomer:
    """A shell session at the repository's root: ``cd`` and ``export`` carry over, ``&`` backgrounds."""

    def __init__(self, root: Path) -> None:
        self.cwd = root
        self.ports = {port: free_port() for port in DEFAULT_PORTS}
        env = {k: v for k, v in clean_env().items() if k not in seed_aliases()}
        self.env = {
            **env,
            "PATH": f"{Path(OPSLAB).parent}{os.pathsep}{env.get('PATH', '')}",
            "OPSLAB_DATA_DIR": str(root / ".opslab"),
            "PORT": str(self.ports[8000]),
            "COLUMNS": "100",
        }
        self.background: list[subprocess.Popen[bytes]] = []
        self.log = root / "session.log"

    def moved(self, text: str) -> str:
        for default, port in self.ports.items():
            text = re.sub(rf"(?<=:){default}\b", str(port), text)
        return text

    def run(self, line: str) -> None:
        command = self.moved(without_comment(line))
        if re.search(r"\bopslab sandbox up\b", command):
            command = command.replace(
                "opslab sandbox up",
                f"opslab sandbox up --port {self.ports[8100]} --dependency-port {self.ports[8101]} "
                f"--chaos-port {self.ports[8180]} --actions-port {self.ports[8190]}",
            )
        if command.startswith("cd "):
            self.cwd = (self.cwd / command[3:].strip()).resolve()
        elif command.startswith("export "):
            name, _, value = command[7:].partition("=")
            self.env[name] = value
        elif command.endswith("&"):
            self._start(command[:-1].strip())
        else:
            self._run(command, line)

    def _start(self, command: str) -> None:
        with self.log.open("ab") as out:
            self.background.append(
                subprocess.Popen(
                    ["bash", "-c", command],
                    cwd=self.cwd,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        if "opslab serve" in command:
            self._wait(f"http://127.0.0.1:{self.ports[8000]}/")
        elif "opslab sandbox up" in command:
            self._wait(f"http://127.0.0.1:{self.ports[8100]}/api/v1/health")

    def _wait(self, url: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.background[-1].poll() is not None:
                raise AssertionError(f"exited before {url} answered:\n{self.log.read_text()[-3000:]}")
            try:
                httpx.get(url, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"nothing answered at {url}:\n{self.log.read_text()[-3000:]}")

    def _run(self, command: str, line: str) -> None:
        r = subprocess.run(
            ["bash", "-c", command], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=300
        )
        allowed = next((codes for prefix, codes in VERDICTS.items() if command.startswith(prefix)), {0})
        background = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        shown = f"$ {line}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n--- in the background:\n{background}"
        assert r.returncode in allowed, shown
        assert "Traceback" not in r.stdout + r.stderr, shown

    def close(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)


def repository_copy(root: Path, session: Newcomer) -> None:
    """``examples/`` as a clone has it (no runs or reports of earlier tries), its default ports moved like
    the session's."""

    def left_out(folder: str, names: list[str]) -> set[str]:
        earlier = {"runs"} if Path(folder).name == ".lab" else set()
        return {n for n in names if n in earlier or n in ("__pycache__", "reports", ".opslab")}

    shutil.copytree(ROOT / "examples", root / "examples", ignore=left_out)
    for path in (root / "examples").rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".json", ".jsonl"):
            path.write_text(session.moved(path.read_text(encoding="utf-8")), encoding="utf-8")


def test_every_capability_page_has_first_steps() -> None:
    for name in CAPABILITY_PAGES:
        assert first_steps(ROOT / "docs" / f"{name}.md"), name


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=needs_sandbox) if n == "lab" else n for n in CAPABILITY_PAGES]
)
def test_a_pages_first_steps_run_on_a_fresh_data_dir(tmp_path: Path, name: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    session = Newcomer(root)
    repository_copy(root, session)
    try:
        for line in first_steps(ROOT / "docs" / f"{name}.md"):
            session.run(line)
    finally:
        session.close()
