"""How much of a large OTLP export the service plans beside its sidecar (``store.traces.ShareBalance``)."""

from __future__ import annotations

import pytest

from opslab.store.traces import OWN_SHARE, ShareBalance


def _warm() -> ShareBalance:
    balance = ShareBalance()
    for _ in range(ShareBalance.WARM_UP):
        balance.update(waited_s=0.02, idle_s=0.0, took_s=0.04)
    return balance


def test_the_sidecars_first_exports_move_nothing() -> None:
    assert _warm().own == OWN_SHARE


def test_waiting_for_the_sidecar_keeps_more_here_and_its_idle_time_sends_more_there() -> None:
    balance = _warm()
    balance.update(waited_s=0.004, idle_s=0.0, took_s=0.04)
    assert balance.own == pytest.approx(OWN_SHARE + ShareBalance.GAIN * 0.1)
    balance = _warm()
    balance.update(waited_s=0.001, idle_s=0.005, took_s=0.04)
    assert balance.own == pytest.approx(OWN_SHARE - ShareBalance.GAIN * 0.1)


def test_the_share_stays_within_its_bounds() -> None:
    balance = _warm()
    for _ in range(50):
        balance.update(waited_s=0.04, idle_s=0.0, took_s=0.04)
    assert balance.own == ShareBalance.HIGHEST
    for _ in range(50):
        balance.update(waited_s=0.0, idle_s=0.04, took_s=0.04)
    assert balance.own == ShareBalance.LOWEST
    balance.update(waited_s=0.0, idle_s=0.0, took_s=0.0)  # no time measured: nothing to learn from
    assert balance.own == ShareBalance.LOWEST
