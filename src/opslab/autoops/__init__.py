"""AutoOps (seed: autoops.md): a build monitor, an optimizer that learns the best build configuration per
pipeline (a contextual Thompson-sampling bandit, or the seed's DQN with the ``dqn`` extra), a fix responder
over the knowledge base whose LLM phrasing is held to the runbook, a controller."""

from typing import TYPE_CHECKING

from opslab.lazy import lazy_exports

if TYPE_CHECKING:
    from opslab.autoops.bandit_state import BanditState, BanditStateStore, InMemoryBanditStore
    from opslab.autoops.controller import AutoOps, BuildLog, BuildRunner, PipelinePass
    from opslab.autoops.dqn import HINT as DQN_HINT
    from opslab.autoops.dqn import DqnOptimizer, dqn_available
    from opslab.autoops.dqn import observation as dqn_observation
    from opslab.autoops.fixes import suggest_fix
    from opslab.autoops.metrics import SERIES, BuildFigures, BuildGroup, BuildMetrics, StoreFigures
    from opslab.autoops.model import (
        ACTIONS,
        ERROR_CLASSES,
        ERROR_TEXTS,
        Action,
        BuildConfig,
        BuildContext,
        BuildRecord,
        BuildResult,
        BuildStatus,
        ErrorClass,
        features,
    )
    from opslab.autoops.optimizer import Choice, ThompsonOptimizer, bucket_chain
    from opslab.autoops.selection import (
        OPTIMIZER_KINDS,
        Optimizer,
        OptimizerKind,
        make_optimizer,
        state_name,
    )
    from opslab.autoops.simulator import (
        ARCHETYPES,
        TIMEOUT_S,
        Archetype,
        BuildSimulator,
        Pipeline,
        expected_duration,
        failure_probabilities,
    )
    from opslab.autoops.suggestion import (
        FixAction,
        FixOutcome,
        FixRequest,
        FixSuggestion,
        NearestDocument,
        RefusedAdvice,
    )
    from opslab.autoops.views import (
        AutoOpsStatus,
        BuildAccepted,
        BuildIn,
        LoopIn,
        LoopState,
        SimulateBuildIn,
        SimulatedBuild,
    )
else:
    __getattr__ = lazy_exports(__name__)

__all__ = [
    "ARCHETYPES",
    "TIMEOUT_S",
    "Archetype",
    "BuildSimulator",
    "Pipeline",
    "expected_duration",
    "failure_probabilities",
    "AutoOps",
    "AutoOpsStatus",
    "BuildAccepted",
    "BuildIn",
    "BuildLog",
    "BuildRecord",
    "BuildRunner",
    "FixAction",
    "FixOutcome",
    "FixRequest",
    "FixSuggestion",
    "LoopIn",
    "LoopState",
    "NearestDocument",
    "PipelinePass",
    "RefusedAdvice",
    "SimulateBuildIn",
    "SimulatedBuild",
    "suggest_fix",
    "ACTIONS",
    "DQN_HINT",
    "ERROR_CLASSES",
    "ERROR_TEXTS",
    "OPTIMIZER_KINDS",
    "SERIES",
    "Action",
    "BanditState",
    "BanditStateStore",
    "BuildConfig",
    "BuildContext",
    "BuildFigures",
    "BuildGroup",
    "BuildMetrics",
    "BuildResult",
    "BuildStatus",
    "Choice",
    "DqnOptimizer",
    "ErrorClass",
    "InMemoryBanditStore",
    "Optimizer",
    "OptimizerKind",
    "StoreFigures",
    "ThompsonOptimizer",
    "bucket_chain",
    "dqn_available",
    "dqn_observation",
    "features",
    "make_optimizer",
    "state_name",
]
