"""The command's start-up: pydantic answers "no plugins" without importing importlib.metadata."""

from __future__ import annotations

import subprocess
import sys
import textwrap


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
        from opslab.cli.app import main
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
