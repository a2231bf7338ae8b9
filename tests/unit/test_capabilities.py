"""The capabilities' declarations (opslab.capabilities): every part they name exists, lives in the layer its
use says, and every setting and table has exactly one owner."""

from __future__ import annotations

from collections import Counter

import pytest
import typer
from fastapi import APIRouter

from opslab.capabilities import CAPABILITIES, PLATFORM, Capability, load
from opslab.config import Settings, settings_sections
from opslab.store.tables import metadata

ALL = (PLATFORM, *CAPABILITIES)


def module_of(ref: str) -> str:
    return ref.partition(":")[0]


@pytest.mark.parametrize("cap", ALL, ids=lambda c: c.name)
def test_every_part_exists_and_lives_in_its_layer(cap: Capability) -> None:
    for ref in (*cap.api, *cap.ui):
        assert module_of(ref).startswith("opslab.api."), ref
        assert isinstance(load(ref), APIRouter), ref
    for ref in cap.services:
        assert module_of(ref).startswith("opslab.api."), ref
        assert callable(load(ref)), ref
    for _name, ref in cap.cli:
        assert module_of(ref).startswith("opslab.cli."), ref
        assert isinstance(load(ref), typer.Typer), ref
    for ref in cap.work:
        # A capability's public API (its package's __init__), the work core's, or the wiring's own.
        assert module_of(ref) in (f"opslab.{cap.name}", "opslab.rca", "opslab.jobs", "opslab.runtime"), ref
        assert callable(load(ref)), ref


def test_names_commands_and_routes_are_declared_once() -> None:
    names = Counter(c.name for c in ALL)
    commands = Counter(name for c in ALL for name, _ in c.cli)
    routers = Counter(ref for c in ALL for ref in (*c.api, *c.ui))
    assert max(names.values()) == max(commands.values()) == max(routers.values()) == 1


def test_every_table_has_exactly_one_owner() -> None:
    owned = Counter(t for c in ALL for t in c.tables)
    assert set(owned) == set(metadata.tables), set(owned) ^ set(metadata.tables)
    assert max(owned.values()) == 1


def test_every_setting_is_in_exactly_one_section() -> None:
    sections = settings_sections()
    fields = [f for fs in sections.values() for f in fs]
    assert sorted(fields) == sorted(Settings.model_fields)
    claims = {f: [c.name for c in ALL if c.owns_setting(f)] for f in Settings.model_fields}
    shared = {f: owners for f, owners in claims.items() if len(owners) != 1}
    assert not shared, shared
    for cap in ALL:
        for prefix in cap.settings:  # a claim that matches nothing is a typo
            alone = Capability(name=cap.name, summary="", settings=(prefix,))
            assert any(alone.owns_setting(f) for f in Settings.model_fields), (cap.name, prefix)
    assert sections["canary"] and "canary_lease_s" in sections["canary"]
    assert "responder_enabled" in sections["responder"] and "env" in sections["service"]


def test_a_reference_that_is_not_module_colon_attribute_is_refused() -> None:
    with pytest.raises(ValueError, match="module:attribute"):
        load("opslab.capabilities")
