"""Preconditions: what must still be true, on a fresh poll taken just before an action runs, for the
action to make sense. The diagnosis was made seconds ago; the world may have moved since (the fault
healed, someone fixed it by hand, another fault took its place). An action whose diagnosis no longer
holds is not run: the incident goes to verification instead.

The rule is the same for every action: the diagnosed category's own rules, scored on the fresh poll,
still reach the floor a diagnosis needs (``MIN_RULE_SCORE``). For ``target_down`` that means the target
still refuses, or its process is still stopped or gone, or still silent on an idle host; for a pool
exhaustion, the pool still critical with its errors; and so on.
"""

from __future__ import annotations

from collections.abc import Sequence

from opslab.responder.config import ResponderConfig
from opslab.responder.detect import Baseline
from opslab.responder.diagnose import MIN_RULE_SCORE, score_rules
from opslab.responder.evidence import gather_evidence
from opslab.responder.model import Category
from opslab.responder.observation import Observation


def still_holds(
    category: Category,
    fresh: Observation,
    history: Sequence[Observation],
    baseline: Baseline,
    config: ResponderConfig,
) -> tuple[bool, str]:
    """Whether ``category`` still describes the target on ``fresh``, and why (for the audit)."""
    if category == "unknown":
        return False, "no diagnosis to act on"
    evidence = gather_evidence(fresh, history, baseline)
    rule = score_rules(fresh, evidence, baseline, config).get(category)
    if rule is None or rule.score < MIN_RULE_SCORE:
        score = rule.score if rule is not None else 0.0
        return False, f"{category} no longer holds on a fresh poll (rule score {score:.2f})"
    return True, f"{category} still holds: {', '.join(rule.reasons)}"
