"""Lab runs outlive the folder they ran in and the machine that ran them: a run finished as a job is
archived (its files in the artifact store, its listing in the database), so a second replica with its own
data dir — sharing the database and, by URL, the artifact store — lists and shows it after the project
folder is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from opslab.api import create_app
from opslab.artifacts import FsspecArtifactStore, LocalArtifactStore, check_key
from opslab.config import Settings
from opslab.errors import InvalidInput
from opslab.serving import ServerThread
from tests.integration.test_lab_jobs_api import project, wait_done


def replica(tmp_path: Path, name: str, db_url: str, allowed: Path, store: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name, database_url=db_url, lab_allowed_roots=[allowed], artifact_store=store
    )


def test_a_run_finished_on_one_replica_is_listed_and_shown_by_another_after_its_folder_is_gone(
    tmp_path: Path, db_url: str
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    proj = project(allowed)
    shared = f"file://{tmp_path / 'shared-artifacts'}"  # as s3://… would be, by URL through fsspec
    a = replica(tmp_path, "a", db_url, allowed, shared)
    b = replica(tmp_path, "b", db_url, allowed, shared)
    with ServerThread(create_app(a)) as sa, httpx.Client(base_url=sa.url, timeout=60) as api_a:
        body = api_a.post(
            "/lab/runs", json={"experiment_path": str(proj / ".lab" / "experiment.yaml")}
        ).json()
        done = wait_done(api_a, body["lab_run_id"])
        assert done["status"] == "done", done
        run_id = done["result"]["run_id"]
    shutil.rmtree(proj)
    with ServerThread(create_app(b)) as sb, httpx.Client(base_url=sb.url, timeout=60) as api_b:
        listing = api_b.get("/ui/experiments")
        assert listing.status_code == 200 and run_id in listing.text and "modes" in listing.text
        shown = api_b.get(f"/ui/experiments/archive/{run_id}", follow_redirects=True)
        assert shown.status_code == 200 and run_id in shown.text
        assert "odd" in shown.text  # the variant comparison came back with the files
        trial = next(p for p in (tmp_path / "b" / "lab" / "archive" / run_id / "trials").iterdir())
        page = api_b.get(f"{shown.url.path}/trials/{trial.name}")
        assert page.status_code == 200 and trial.name in page.text
        assert api_b.get("/ui/experiments/archive/no-such-run").status_code == 404


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../up", "a/../../b", "x\x00y"])
def test_a_key_outside_the_store_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_key(bad)
    with pytest.raises(InvalidInput):
        LocalArtifactStore(tmp_path).put(bad, b"x")


def test_both_stores_keep_and_list_the_same_files(tmp_path: Path) -> None:
    for store in (LocalArtifactStore(tmp_path / "local"), FsspecArtifactStore(f"file://{tmp_path / 'url'}")):
        store.put("lab/r1/manifest.json", b"{}")
        store.put("lab/r1/trials/t1/out.json", b"[1]")
        assert store.keys("lab/r1") == ["lab/r1/manifest.json", "lab/r1/trials/t1/out.json"]
        assert store.get("lab/r1/trials/t1/out.json") == b"[1]" and store.exists("lab/r1/manifest.json")
        assert store.keys("lab/none") == []
        with pytest.raises(FileNotFoundError):
            store.get("lab/r1/missing")
