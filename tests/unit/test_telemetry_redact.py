from __future__ import annotations

import copy
from typing import Any

from opslab.telemetry import Redactor, parse_run, prepare_run
from opslab.telemetry.redact import MASK


def test_known_secret_shapes_are_masked() -> None:
    r = Redactor()
    cases = {
        "key sk-proj-abcdefghijklmnop1234": "sk-proj",
        "aws AKIAABCDEFGHIJKLMNOP here": "AKIA",
        "Authorization: Bearer abc.def-ghi_jkl": "abc.def",
        "login password=hunter2!, then": "hunter2",
        "postgres://user:s3cr3t@db:5432/x": "s3cr3t",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9Pl": "eyJ",
    }
    for text, secret in cases.items():
        out = r.text(text)
        assert secret not in out and MASK in out, out


def test_plain_text_is_untouched() -> None:
    r = Redactor()
    text = "Missing required field: 'customer_id'. API schema updated to v2.0; 1250 tokens used"
    assert r.text(text) == text


def test_secret_keys_in_arguments_are_masked_recursively() -> None:
    r = Redactor()
    out = r.value(
        {"user": "ann", "db_password": "x", "nested": [{"api_key": "y", "note": "ok"}], "tokens": 5}
    )
    assert out == {
        "user": "ann",
        "db_password": MASK,
        "nested": [{"api_key": MASK, "note": "ok"}],
        "tokens": 5,
    }


def test_extra_patterns_and_switch_off() -> None:
    assert Redactor(extra_patterns=(r"ACME-\d{6}",)).text("id ACME-123456") == f"id {MASK}"
    assert Redactor(enabled=False).text("password=hunter2") == "password=hunter2"


def test_prepare_run_redacts_every_free_text_field(run_001: dict[str, Any]) -> None:
    body = copy.deepcopy(run_001)
    body["error_message"] = "upstream said: api_key=abc123"
    body["steps"][0]["input_summary"] = "use sk-abcdefghijklmnopqrstu"
    body["tool_calls"][0]["args_json"]["password"] = "pw"
    body["tool_calls"][0]["error_message"] = "Bearer abcdefghijkl rejected"
    body["guardrail_events"][0]["message"] = "saw AKIAABCDEFGHIJKLMNOP"
    prepared = prepare_run(parse_run(body), redactor=Redactor())
    dumped = prepared.run.model_dump_json()
    for secret in ("abc123", "sk-abcdefghij", '"pw"', "abcdefghijkl", "AKIAABCDEFGHIJKLMNOP"):
        assert secret not in dumped
    assert prepared.run.tool_calls[0].args_json["order_number"] == "12345"  # type: ignore[index,call-overload]


def test_content_hash_is_stable_and_content_sensitive(run_001: dict[str, Any]) -> None:
    a = prepare_run(parse_run(run_001), redactor=Redactor()).content_hash
    assert a == prepare_run(parse_run(copy.deepcopy(run_001)), redactor=Redactor()).content_hash
    changed = copy.deepcopy(run_001)
    changed["tool_calls"][0]["status_code"] = 429
    assert a != prepare_run(parse_run(changed), redactor=Redactor()).content_hash


def test_the_services_own_secrets_are_masked_even_with_redaction_off() -> None:
    from opslab.telemetry import Redactor

    for enabled in (True, False):
        r = Redactor(enabled=enabled, known_secrets=("plain-looking-value-123",))
        assert r.text("leaked plain-looking-value-123 here") == "leaked [REDACTED] here"
        assert r.value({"note": ["plain-looking-value-123"]}) == {"note": ["[REDACTED]"]}
