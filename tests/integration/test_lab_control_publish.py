"""`opslab lab publish`: a debug bundle of a real run (its replays and forks too), secrets redacted, every
file listed with its digest; `validate-hooks` on a real harness's events."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

from opslab.lab import fork_trial, replay_trial
from opslab.lab.publish import MAX_FILE_BYTES
from tests.e2e.conftest import clean_env
from tests.integration.test_lab_control_derived import cli, make_project, ran

TOKEN, PLAIN = "tok-secret-7777", "plain-visible-9999"


def test_a_bundle_holds_the_runs_files_with_the_secrets_masked(tmp_path: Path) -> None:
    project = make_project(tmp_path, env_allow=["LAB_PLAIN"])
    env = {**os.environ, "LAB_TEST_TOKEN": TOKEN, "LAB_PLAIN": PLAIN}
    run_dir = ran(project, env)
    replay_trial(run_dir, "trial_1", env_base=env)
    fork_trial(run_dir, "trial_2", at="last", sets={}, env_base=env)
    stdout = (run_dir / "trials/trial_1/out/stdout.log").read_text()
    assert TOKEN in stdout and "sk-aaaa" in stdout, "the harness leaked them: the bundle must not"
    with (run_dir / "trials/trial_2/out/stderr.log").open("a") as f:  # a leak the trial did not scrub
        f.write(f"LAB_PLAIN={PLAIN}\n")
    (run_dir / "trials/trial_1/out/stderr.log").write_text(
        "x" * (MAX_FILE_BYTES + 10) + f"\n{TOKEN} at the end\n"
    )

    out_file = tmp_path / "bundles" / "debug.tar.gz"
    code, out = cli(
        "publish",
        "--run-dir",
        str(run_dir),
        "--output",
        str(out_file),
        env=clean_env(LAB_TEST_TOKEN=TOKEN, LAB_PLAIN=PLAIN),
    )
    bundle = out["bundle"]
    assert code == 0 and bundle["path"] == str(out_file) and out_file.is_file()
    assert bundle["sha256"] == hashlib.sha256(out_file.read_bytes()).hexdigest()
    run_id = run_dir.name
    with tarfile.open(out_file) as tar:
        members = {m.name.removeprefix(f"{run_id}/"): tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    for expected in (
        "manifest.json",
        "resolved_experiment.json",
        "attestation.json",
        "analysis/tables/trials.jsonl",
        "analysis/report.md",
        "trials/trial_1/trial_input.json",
        "trials/trial_1/trial_output.json",
        "trials/trial_1/out/stdout.log",
        "trials/trial_2/out/harness_events.jsonl",
        "replays/trial_1-1/replay.json",
        "replays/trial_1-1/trials/trial_1/out/stdout.log",
        "forks/trial_2-fork1/fork.json",
        "forks/trial_2-fork1/trials/trial_2-fork1/trial_output.json",
        "bundle_manifest.json",
    ):
        assert expected in members, expected
    assert not [n for n in members if "/workspace/" in n or n.endswith(".tar.gz")]
    everything = b"".join(members.values())
    for secret in (TOKEN.encode(), PLAIN.encode(), b"sk-aaaa", b"Bearer abcdefghijkl"):
        assert secret not in everything, secret
    assert b"[REDACTED:LAB_TEST_TOKEN]" in members["trials/trial_1/out/stdout.log"]
    assert b"[REDACTED:LAB_PLAIN]" in members["trials/trial_2/out/stderr.log"]
    assert b"Bearer [REDACTED]" in members["trials/trial_1/out/stdout.log"]

    listed = json.loads(members["bundle_manifest.json"])
    assert listed["run_id"] == run_id and listed["redaction"]["variables"] == ["LAB_PLAIN", "LAB_TEST_TOKEN"]
    files = {f["path"]: f for f in listed["files"]}
    assert set(files) == set(members) - {"bundle_manifest.json"} and bundle["files"] == len(files)
    for path, entry in files.items():
        assert entry["sha256"] == hashlib.sha256(members[path]).hexdigest() and entry["size"] == len(
            members[path]
        )
    big = files["trials/trial_1/out/stderr.log"]
    assert big["truncated"] and big["redacted"] and big["original_sha256"]
    assert members["trials/trial_1/out/stderr.log"].startswith(b"[opslab: first ")
    assert files["trials/trial_1/out/stdout.log"]["redacted"] and not files["manifest.json"]["redacted"]

    code, out = cli("publish", "--run-dir", str(run_dir))
    assert code == 0 and out["bundle"]["path"] == str(run_dir / "debug_bundle.tar.gz")
    code, out = cli("publish", "--run-dir", str(tmp_path / "nowhere"))
    assert code == 4 and out["error"]["code"] == "not_found"


def test_validate_hooks_passes_a_real_harness_stream_and_names_a_broken_line(tmp_path: Path) -> None:
    run_dir = ran(make_project(tmp_path))
    events = run_dir / "trials/trial_1/out/harness_events.jsonl"
    manifest = tmp_path / "harness_manifest.json"
    manifest.write_text(json.dumps({"integration_level": "cli_events", "events": {}}))
    code, out = cli("validate-hooks", "--events", str(events), "--manifest", str(manifest))
    assert (
        code == 0
        and out["report"]["types"] == {"checkpoint": 3}
        and out["report"]["manifest"] == str(manifest)
    )
    with events.open("a") as f:
        f.write('{"type": "tool_call"}\n')
    code, out = cli("validate-hooks", "--events", str(events), "--manifest", str(manifest))
    assert code == 2 and out["error"]["details"]["errors"] == [
        {
            "line": 4,
            "field": "$.type",
            "message": "'tool_call' is not declared in the manifest (declared: ['checkpoint'])",
        }
    ]
    code, out = cli(
        "validate-schema", "--schema", "trial_input", str(run_dir / "trials/trial_1/trial_input.json")
    )
    assert code == 0
    code, out = cli(
        "validate-schema", "--schema", "trial_output", str(run_dir / "trials/trial_1/trial_input.json")
    )
    assert code == 2 and out["error"]["details"]["errors"][0] == {"field": "$.outcome", "message": "required"}
