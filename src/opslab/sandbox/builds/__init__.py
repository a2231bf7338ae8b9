"""A simulated CI runner for AutoOps: seeded pipelines whose builds fail for config-dependent causes."""

from opslab.sandbox.builds.simulator import (
    ARCHETYPES,
    TIMEOUT_S,
    Archetype,
    BuildSimulator,
    Pipeline,
    expected_duration,
    failure_probabilities,
)

__all__ = [
    "ARCHETYPES",
    "TIMEOUT_S",
    "Archetype",
    "BuildSimulator",
    "Pipeline",
    "expected_duration",
    "failure_probabilities",
]
