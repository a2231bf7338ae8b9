"""``opslab demo``: start what it needs on the embedded default, run every capability, stop cleanly."""

from opslab.demo.runner import run_demo

__all__ = ["run_demo"]
