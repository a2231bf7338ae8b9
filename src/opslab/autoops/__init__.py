"""AutoOps (seed: autoops.md): a build monitor, an optimizer that learns the best build configuration per
pipeline (a contextual Thompson-sampling bandit), a fix responder over the knowledge base, a controller."""

from opslab.autoops.model import (
    ACTIONS,
    ERROR_CLASSES,
    ERROR_TEXTS,
    Action,
    BuildConfig,
    BuildContext,
    BuildResult,
    BuildStatus,
    ErrorClass,
    features,
)

__all__ = [
    "ACTIONS",
    "ERROR_CLASSES",
    "ERROR_TEXTS",
    "Action",
    "BuildConfig",
    "BuildContext",
    "BuildResult",
    "BuildStatus",
    "ErrorClass",
    "features",
]
