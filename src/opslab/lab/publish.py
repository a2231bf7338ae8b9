"""A run's debug bundle (``opslab lab publish``): one ``.tar.gz`` to attach to an issue or hand over, with
the secrets taken out.

It holds the run's manifest, frozen config (and its digest), attestation, control file and egress log;
the analysis (tables, comparison, report); and for every trial — and every replay and fork — its
``trial_input.json``, ``trial_output.json``, the harness's ``stdout.log`` / ``stderr.log``, its events
and spans and ``state/diff.json``; never the workspaces. A log over ``MAX_FILE_BYTES`` keeps its tail.

Every file is redacted on the way in: the values of the variables the experiment's ``runtime.env_allow``
names and of variables whose names say secret (``*_TOKEN``, ``*_API_KEY``, ``*PASSWORD*``…), as this
process's environment has them, become ``[REDACTED:NAME]`` in every encoding ``opslab.lab.secrets``
knows (JSON-escaped, URL-encoded, base64…); then ``opslab.telemetry.Redactor``'s patterns
(``sk-…`` keys, AWS key ids, ``Bearer …``, GitHub and Slack tokens, JWTs, ``password=…``, credentials in
URLs) become ``[REDACTED]``. ``bundle_manifest.json``, the bundle's last entry, lists every file with its
size and SHA-256 as bundled, whether it was redacted or truncated, and which variables were masked.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import stat
import tarfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

from opslab import __version__
from opslab.lab.artifacts import file_digest, now, read_json
from opslab.lab.derived import open_run
from opslab.lab.records import SCHEMA_VERSION, Timestamp
from opslab.lab.secrets import MIN_SECRET_CHARS, scrubber
from opslab.lab.untrusted import open_beneath
from opslab.telemetry import Redactor

MAX_FILE_BYTES = 16 * 1024 * 1024
RUN_FILES = (
    "manifest.json",
    "resolved_experiment.json",
    "resolved_experiment.digest",
    "attestation.json",
    "control.json",
    "egress.jsonl",
)
TRIAL_FILES = (
    "trial_input.json",
    "trial_output.json",
    "out/stdout.log",
    "out/stderr.log",
    "out/harness_events.jsonl",
    "out/otel_spans.jsonl",
    "state/diff.json",
)
SECRET_NAME = re.compile(r"(?i)secret|passw|token|api_?key|access_?key|private_?key|credential|session_?id")
PATTERNS = (
    "opslab.telemetry.Redactor: sk- keys, AWS key ids, bearer, GitHub, Slack, JWT, password=, URL creds"
)


class BundledFile(BaseModel):
    path: str  # inside the bundle, under <run_id>/
    size: int
    sha256: str  # as bundled (after redaction)
    redacted: bool = False
    original_sha256: str | None = None  # of the file in the run, when redaction or truncation changed it
    truncated: bool = False


class Redaction(BaseModel):
    variables: list[str]  # names whose values were masked (those set in the environment)
    patterns: str = PATTERNS


class BundleManifest(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created_at: Timestamp
    runner_version: str = __version__
    redaction: Redaction
    files: list[BundledFile]


class Bundle(BaseModel):
    """What ``publish`` made: where, how many files, how many redacted, its own digest."""

    path: Path
    run_id: str
    files: int
    redacted_files: int
    bytes: int
    sha256: str
    manifest: BundleManifest


def publish_run(run_dir: Path, *, output: Path | None = None, env: Mapping[str, str]) -> Bundle:
    """Write the run's debug bundle to ``output`` (default ``RUN_DIR/debug_bundle.tar.gz``)."""
    run = open_run(run_dir)
    run_id = run.run_dir.name
    masked = secret_variables(read_json(run.run_dir / "resolved_experiment.json"), env)
    redactor = Redactor()
    target = (output or run.run_dir / "debug_bundle.tar.gz").resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    listed: list[BundledFile] = []
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for rel in bundled_paths(run.run_dir):
                found = _redacted(run.run_dir, rel, masked, redactor)
                if found is None:  # swapped for a link or a FIFO since it was listed: left out
                    continue
                data, entry = found
                _add(tar, f"{run_id}/{rel}", data)
                listed.append(entry)
            manifest = BundleManifest(
                run_id=run_id, created_at=now(), redaction=Redaction(variables=sorted(masked)), files=listed
            )
            _add(tar, f"{run_id}/bundle_manifest.json", manifest.model_dump_json(indent=2).encode())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return Bundle(
        path=target,
        run_id=run_id,
        files=len(listed),
        redacted_files=sum(f.redacted for f in listed),
        bytes=target.stat().st_size,
        sha256=file_digest(target) or "",
        manifest=manifest,
    )


def secret_variables(frozen_config: object, env: Mapping[str, str]) -> dict[str, str]:
    """The values to mask, by variable name: ``runtime.env_allow``'s and every secret-looking name's."""
    runtime = frozen_config.get("runtime") if isinstance(frozen_config, dict) else None
    allowed = runtime.get("env_allow") if isinstance(runtime, dict) else None
    names = {n for n in allowed if isinstance(n, str)} if isinstance(allowed, list) else set()
    names.update(n for n in env if SECRET_NAME.search(n))
    values = {n: env[n] for n in sorted(names) if len(env.get(n, "")) >= MIN_SECRET_CHARS}
    # Longest first: a secret containing another is masked whole.
    return dict(sorted(values.items(), key=lambda kv: -len(kv[1])))


def bundled_paths(run_dir: Path) -> Iterator[str]:
    """The files of the run that go into its bundle, relative to the run folder, in a stable order."""
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            yield name
    analysis = run_dir / "analysis"
    if analysis.is_dir():
        for p in sorted(analysis.rglob("*")):
            if p.is_file() and not p.is_symlink() and p.suffix != ".duckdb":
                yield str(p.relative_to(run_dir))
    trial_dirs = [*_children(run_dir / "trials")]
    for kind, marker in (("replays", "replay.json"), ("forks", "fork.json")):
        for home in _children(run_dir / kind):
            if (home / marker).is_file():
                yield str((home / marker).relative_to(run_dir))
            trial_dirs.extend(_children(home / "trials"))
    for tdir in trial_dirs:
        for name in TRIAL_FILES:
            if (tdir / name).is_file() and not (tdir / name).is_symlink():
                yield str((tdir / name).relative_to(run_dir))


def _children(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _redacted(
    run_dir: Path, rel: str, masked: Mapping[str, str], redactor: Redactor
) -> tuple[bytes, BundledFile] | None:
    """The file, masked, as the bundle holds it; None when it is not a regular file reached without a
    link (a trial's folders are its harness's: see ``untrusted``)."""
    try:
        fd = open_beneath(str(run_dir), rel)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return _masked(f, st.st_size, rel, masked, redactor)


def _masked(
    f: BinaryIO, size: int, rel: str, masked: Mapping[str, str], redactor: Redactor
) -> tuple[bytes, BundledFile]:
    if size > MAX_FILE_BYTES:
        f.seek(size - MAX_FILE_BYTES)
    raw = f.read(MAX_FILE_BYTES)
    text = scrubber(masked).bytes(raw).decode("utf-8", errors="surrogateescape")
    clean = redactor.text(text).encode("utf-8", errors="surrogateescape")
    truncated, redacted = size > MAX_FILE_BYTES, clean != raw
    if truncated:
        clean = f"[opslab: first {size - MAX_FILE_BYTES} bytes left out]\n".encode() + clean
    original = None
    if truncated or redacted:
        h = hashlib.sha256()
        f.seek(0)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
        original = h.hexdigest()
    entry = BundledFile(
        path=rel,
        size=len(clean),
        sha256=hashlib.sha256(clean).hexdigest(),
        redacted=redacted,
        original_sha256=original,
        truncated=truncated,
    )
    return clean, entry


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))
