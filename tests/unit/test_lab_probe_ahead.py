"""The sandbox probes ``opslab lab run`` starts before its experiment is resolved (``probe_ahead``): the
preflight of a plan they answer takes their answers instead of probing again, once; a plan they do not
answer probes for itself; a refusal is still the preflight's, naming the layer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opslab.errors import Unavailable
from opslab.lab.isolation import checks, netns
from opslab.lab.isolation.plan import IsolationPlan, plan_for
from opslab.lab.isolation.sandbox import DEFAULT_PIDS_LIMIT


class Probes:
    """Counts the probes made, by kind; the sandbox's answer is ``works``, given once ``release`` is set."""

    def __init__(self) -> None:
        self.sandbox: list[tuple[int, bool]] = []
        self.network = 0
        self.works = True
        self.release = threading.Event()
        self.release.set()

    def sandbox_probe(self, pids_limit: int, private_network: bool) -> bool:
        self.release.wait(10)
        self.sandbox.append((pids_limit, private_network))
        return self.works

    def network_probe(self) -> str | None:
        self.network += 1
        return None


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Probes]:
    made = Probes()
    monkeypatch.setattr(checks, "_sandbox_probe", made.sandbox_probe)
    monkeypatch.setattr(netns, "probe", made.network_probe)
    monkeypatch.setattr(checks, "_worked", set())
    monkeypatch.setattr(checks, "_ahead", {})
    yield made


def none_plan(tmp_path: Path, pids_limit: int = DEFAULT_PIDS_LIMIT) -> IsolationPlan:
    return plan_for(
        network="none",
        allowed_hosts=[],
        image=None,
        integration_level="cli_basic",
        project_root=tmp_path,
        pids_limit=pids_limit,
        zygote_settings=False,
    )


def test_the_preflight_takes_the_answers_probed_ahead_once(probes: Probes, tmp_path: Path) -> None:
    probes.release.clear()  # the probes are still running when the preflight asks
    checks.probe_ahead()
    waiting = threading.Thread(target=checks.preflight, args=(none_plan(tmp_path),))
    waiting.start()
    probes.release.set()
    waiting.join(10)
    assert not waiting.is_alive()
    assert probes.sandbox == [(DEFAULT_PIDS_LIMIT, True)] and probes.network == 1
    checks.preflight(none_plan(tmp_path))  # a second plan probes again: the answers were taken
    assert len(probes.sandbox) == 2 and probes.network == 2


def test_a_plan_the_probes_ahead_do_not_answer_probes_for_itself(probes: Probes, tmp_path: Path) -> None:
    checks.probe_ahead()
    checks.preflight(none_plan(tmp_path, pids_limit=64))
    assert sorted(probes.sandbox) == sorted([(DEFAULT_PIDS_LIMIT, True), (64, True)])


def test_a_sandbox_refused_ahead_is_refused_by_the_preflight_naming_the_layer(
    probes: Probes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes.works = False
    monkeypatch.setattr(checks.shutil, "which", lambda name, **_: None)  # no bubblewrap here
    checks.probe_ahead()
    with pytest.raises(Unavailable) as refused:
        checks.preflight(none_plan(tmp_path))
    assert "bubblewrap" in refused.value.message
    assert refused.value.details == {"field": "runtime.network.mode", "layer": "sandbox"}
    assert probes.sandbox == [(DEFAULT_PIDS_LIMIT, True)]  # the layers were not probed twice
