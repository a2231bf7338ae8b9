"""A run's private folder in the temporary directory: its owner holds it by a lock, and the next run
sweeps away the folders of runners that are gone (kill -9 included), never a live one or a stranger's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from opslab.lab.isolation import RunScratch, sweep
from opslab.lab.isolation.scratch import LOCK, PREFIX

OWNER = """
import sys
from opslab.lab.isolation import RunScratch
scratch = RunScratch(sys.argv[1])
open(scratch.file("proxy.sock"), "w").close()
print(scratch.path, flush=True)
sys.stdin.read()  # holds the folder until killed
"""


def test_a_runner_killed_with_9_has_its_folder_swept_and_a_live_one_keeps_its_own(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    dead_folder = Path(owner.stdout.readline().strip())
    with RunScratch(str(tmp_path)) as live:
        assert sweep(str(tmp_path)) == [] and dead_folder.is_dir()  # its owner still runs
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        assert sweep(str(tmp_path)) == [str(dead_folder)] and not dead_folder.exists()
        assert Path(live.path).is_dir() and Path(live.path).name.startswith(PREFIX)
    assert not Path(live.path).exists()  # its owner removes it on the way out


def test_folders_that_are_not_a_runners_are_left_alone(tmp_path: Path) -> None:
    decoy = tmp_path / "opslab-egress-decoy"  # another program's, or an older runner's: no lock inside
    decoy.mkdir()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(decoy / "proxy.sock"))
    (tmp_path / f"{PREFIX}file").write_text("not a folder")
    (tmp_path / f"{PREFIX}link").symlink_to(decoy)
    unlocked = tmp_path / f"{PREFIX}nolock"
    unlocked.mkdir()
    assert sweep(str(tmp_path)) == []
    assert (decoy / "proxy.sock").exists() and unlocked.is_dir()
    listener.close()


def test_the_private_folder_is_the_owners_alone(tmp_path: Path) -> None:
    with RunScratch(str(tmp_path)) as scratch:
        assert (os.stat(scratch.path).st_mode & 0o777) == 0o700
        assert (Path(scratch.path) / LOCK).is_file()
