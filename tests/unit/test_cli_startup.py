"""The command's start-up: pydantic answers "no plugins" without importing importlib.metadata."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.strip()


def test_models_build_and_validate_without_the_plugin_scan() -> None:
    assert (
        _python(
            """
        import sys
        from opslab.cli.startup import without_pydantic_plugins
        without_pydantic_plugins()
        without_pydantic_plugins()  # again (a command calls it once; an embedding process may again)
        from pydantic import BaseModel
        class M(BaseModel):
            x: int
        assert M.model_validate({"x": "2"}).x == 2
        print("importlib.metadata" in sys.modules)
        """
        )
        == "False"
    )


def test_a_name_the_stand_in_does_not_have_comes_from_pydantics_own_loader() -> None:
    assert (
        _python(
            """
        import sys
        from opslab.cli.startup import PLUGIN_LOADER, without_pydantic_plugins
        without_pydantic_plugins()
        print(sys.modules[PLUGIN_LOADER].PYDANTIC_ENTRY_POINT_GROUP, "importlib.metadata" in sys.modules)
        """
        )
        == "pydantic True"
    )


def test_the_lab_command_starts_without_importlib_metadata() -> None:
    assert (
        _python(
            """
        import sys
        sys.argv = ["opslab", "lab", "--help"]
        from opslab.cli import main
        try:
            main()
        except SystemExit:
            pass
        import opslab.lab.config, opslab.lab.records  # the models a run builds first
        print("importlib.metadata" in sys.modules)
        """
        ).splitlines()[-1]
        == "False"
    )


def test_a_set_up_runs_with_the_collector_paused_then_freezes_what_it_made() -> None:
    assert (
        _python(
            """
            import gc
            from opslab.cli.startup import setting_up

            gc.enable()
            frozen = gc.get_freeze_count()
            with setting_up():
                paused = not gc.isenabled()
                made = [[i] for i in range(1000)]  # containers the collector tracks
            print(paused, gc.isenabled(), gc.get_freeze_count() >= frozen + len(made))
            gc.disable()
            with setting_up():  # a collector paused before stays paused
                pass
            print(gc.isenabled())
            """
        )
        == "True True True\nFalse"
    )


def test_a_capability_command_builds_that_command_alone() -> None:
    from typer.main import get_command

    from opslab.cli.app import _capability_commands, _named, _root, _typer_app

    lab = _typer_app(_capability_commands()["lab"])

    def commands(word: list[str]) -> list[str]:
        root = _root()
        root.add_typer(_named(lab, word), name="lab")
        group = get_command(root).commands["lab"]  # type: ignore[attr-defined]
        return sorted(group.commands)

    assert commands(["run"]) == ["run"]
    assert commands(["knobs-validate"]) == ["knobs-validate"]  # a function's name, dashed as Typer does
    whole = commands([])
    assert len(whole) > 10 and "run" in whole
    assert commands(["--help"]) == commands(["runx"]) == whole  # the group's help, an unknown command


def test_a_command_line_parses_the_same_with_the_command_alone(tmp_path: Path) -> None:
    opslab = str(Path(sys.executable).with_name("opslab"))
    usage = subprocess.run([opslab, "lab", "run", "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0 and "opslab lab run [OPTIONS]" in usage.stdout
    unknown = subprocess.run([opslab, "lab", "runx"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "No such command 'runx'" in unknown.stderr
    bad = subprocess.run(
        [opslab, "lab", "run", str(tmp_path / "missing.yaml"), "--bogus", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert '"field": "--bogus"' in bad.stdout


def test_the_sandbox_probes_start_before_the_experiments_models_import() -> None:
    # ``opslab lab run`` starts them first, to run on the other core while pydantic, PyYAML and the
    # experiment's models import: their module must not pull those in.
    assert (
        _python(
            """
        import sys
        from opslab.lab import probe_ahead
        print(sorted(m for m in ("pydantic", "yaml", "opslab.lab.config") if m in sys.modules))
        """
        )
        == "[]"
    )
