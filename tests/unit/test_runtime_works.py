"""The runtime's work kinds are made when first asked for: a command that runs and routes no job never
imports the capabilities' work; asked, every kind is there and the responder's commands stay with the
replica holding its lease."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_work_is_made_on_first_use_and_routes_as_before(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from opslab.config import Settings
        from opslab.runtime import Runtime

        rt = Runtime.build(Settings(data_dir={str(tmp_path)!r}), migrate=True)
        heavy = ("opslab.rca.analyze", "opslab.canary.job", "opslab.lab.job", "opslab.responder")
        print(sorted(m for m in heavy if m in sys.modules))
        print(sorted(rt.works))
        print([m for m in heavy if m not in sys.modules])
        print("responder" in rt.routing.service_kinds, "rca" in rt.routing.service_kinds)
        rt.close()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    before, kinds, missing, routing = out.stdout.splitlines()
    assert before == "[]"
    assert kinds == "['canary', 'lab', 'rca', 'responder', 'task']"
    assert missing == "[]"
    assert routing == "True False"
