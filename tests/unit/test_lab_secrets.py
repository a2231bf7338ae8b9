"""Secrets stay out of what a run writes, in every encoding a harness writes them in: properties over
values with quotes, backslashes, non-ASCII and control characters."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opslab.lab.secrets import MIN_SECRET_CHARS, Scrubber, _embedded_b64, forms

AWKWARD = [
    '"',
    "\\",
    "€",
    "\n",
    "\t",
    "\x00",
    "\x1b",
    "\x7f",
    "'",
    "/",
    "<",
    "&",
    " ",
    "é",
    "😀",
    "\u2028",
    "%",
    "+",
]
CHARS = st.one_of(st.sampled_from(AWKWARD), st.characters(exclude_categories=("Cs",)))
SECRETS = st.text(CHARS, min_size=MIN_SECRET_CHARS, max_size=24)
TEXT = st.text(CHARS, max_size=40)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encodings(secret: str) -> list[str]:
    """How harnesses write a value: what each of these produces must be scrubbed."""
    raw = secret.encode()
    return [
        secret,
        json.dumps({"k": secret}),
        json.dumps({"k": secret}, ensure_ascii=False),
        json.dumps(json.dumps({"k": secret})),  # JSON inside JSON
        repr({"k": secret}),
        f"https://x.test/?q={quote(secret, safe='')}",
        f"https://x.test/?q={quote_plus(secret)}",
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    ]


def clean(text: str, secret: str) -> bool:
    return not any(form in text for form in forms(secret))


@PROPERTY
@given(secret=SECRETS, before=TEXT, after=TEXT)
def test_no_encoding_of_a_secret_survives_in_text(secret: str, before: str, after: str) -> None:
    scrub = Scrubber({"API_TOKEN": secret})
    for encoded in encodings(secret):
        out = scrub.text(before + encoded + after)
        assert clean(out, secret), (encoded, out)
        assert "[REDACTED:API_TOKEN]" in out or "***" in out


@PROPERTY
@given(secret=SECRETS, prefix=st.binary(max_size=5), suffix=st.binary(max_size=5))
def test_a_secret_inside_a_longer_base64_text_is_found_at_any_offset(
    secret: str, prefix: bytes, suffix: bytes
) -> None:
    raw = secret.encode()
    encoded = base64.b64encode(prefix + raw + suffix).decode()
    pieces = _embedded_b64(raw)
    if pieces:  # values of 6 bytes and more: their base64 is long enough to tell from ordinary text
        assert any(piece in encoded for piece in pieces)
        out = Scrubber({"K": secret}).text(f"Authorization: Basic {encoded}")
        assert not any(piece in out for piece in pieces)


@PROPERTY
@given(secret=SECRETS, key=TEXT, other=TEXT)
def test_a_json_value_holds_the_secret_nowhere_keys_included(secret: str, key: str, other: str) -> None:
    # Text that is not the secret may spell it once JSON-escaped ("\x00" is written \u0000, which holds
    # a secret "0000"): that is a coincidence of the escaping, not the secret leaking.
    for ascii_only in (True, False):
        assume(secret not in json.dumps([key, other], ensure_ascii=ascii_only))
    # Nor do the value's own fixed parts hold a secret: one spelled "true" is in `"ok": true` by design.
    assume(clean(json.dumps({"result": {"echo": [{"deep": ""}]}, "n": 3, "ok": True}), secret))
    value: Any = {
        "result": {"echo": secret, f"{key}{secret}": [other, f"x{secret}y", {"deep": json.dumps(secret)}]},
        "n": 3,
        "ok": True,
    }
    out = Scrubber({"K": secret}).value(value)
    for dumped in (json.dumps(out), json.dumps(out, ensure_ascii=False)):
        assert clean(dumped, secret), dumped
    assert out["n"] == 3 and out["ok"] is True


@PROPERTY
@given(secret=SECRETS)
def test_files_and_their_names_are_scrubbed_in_a_tree(tmp_path_factory: Any, secret: str) -> None:
    root = Path(str(tmp_path_factory.mktemp("tree")))
    name = "f-" + "".join(c if c.isalnum() else "_" for c in secret)[:40]
    (root / "out").mkdir()
    (root / "out" / "stdout.log").write_text(f"secret is {secret}\n", encoding="utf-8")
    (root / "out" / "trial_output.json").write_text(json.dumps({"result": {"echo": secret}}))
    (root / "workspace" / name).mkdir(parents=True)
    (root / "workspace" / name / "notes.txt").write_bytes(base64.b64encode(secret.encode()))
    scrub = Scrubber({"K": secret})
    assert scrub.tree(str(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in (*dirnames, *filenames):
            assert clean(entry, secret), entry
        for f in filenames:
            text = (Path(dirpath) / f).read_bytes().decode("utf-8", "replace")
            assert clean(text, secret), (f, text)


def test_a_secret_that_holds_another_is_masked_whole_under_its_own_name() -> None:
    scrub = Scrubber({"SHORT": "abcd1234", "LONG": "xx-abcd1234-yy"})
    assert scrub.text("a xx-abcd1234-yy b abcd1234") == "a [REDACTED:LONG] b [REDACTED:SHORT]"


def test_a_secret_inside_a_marker_or_across_one_becomes_stars() -> None:
    scrub = Scrubber({"K": "REDA", "ACTED": "CTED:K]z"})
    out = scrub.text("REDA CTED:K]z")
    assert "REDA" not in out and "CTED:K]z" not in out


def test_short_values_are_passed_not_scrubbed() -> None:
    scrub = Scrubber({"PIN": "123"})
    assert not scrub and scrub.text("pin 123") == "pin 123"


def test_a_file_is_replaced_not_rewritten_and_links_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("token s3cr3t-value here")
    trial = tmp_path / "trial"
    trial.mkdir()
    os.link(outside, trial / "hard.txt")
    (trial / "soft.txt").symlink_to(outside)
    scrub = Scrubber({"K": "s3cr3t-value"})
    scrub.tree(str(trial))
    assert outside.read_text() == "token s3cr3t-value here"  # the run's copy changed, not the file elsewhere
    assert (trial / "hard.txt").read_text() == "token [REDACTED:K] here"
    assert (trial / "soft.txt").is_symlink()


def test_only_what_changed_since_the_mark_is_read(tmp_path: Path) -> None:
    scrub = Scrubber({"K": "s3cr3t-value"})
    (tmp_path / "before.txt").write_text("s3cr3t-value")  # as the project copy holds it: not the trial's
    since = scrub.mark(str(tmp_path))
    (tmp_path / "after.txt").write_text("s3cr3t-value")
    scrub.tree(str(tmp_path), since_ns=since)
    assert (tmp_path / "after.txt").read_text() == "[REDACTED:K]"
    assert not list(tmp_path.glob(".scrub-*"))


def test_host_names_are_compared_without_case_and_decoded() -> None:
    scrub = Scrubber({"K": "Abcd€efgh12"})
    label = "abcd€efgh12".encode("idna").decode()
    for host in (
        f"{label}.evil.test",
        f"{label.upper()}.evil.test",
        "ABCD€EFGH12.evil.test",
        f"z{label}.test",
    ):
        out = scrub.host(host)
        assert "abcd" not in out.lower() and label not in out.lower(), out
