"""The base of every plan model: strict, closed, finite."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

# ``${NAME}``: a value taken from the environment when the run starts (never stored resolved).
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Strict(BaseModel):
    # Strict: `seed: false` is not 0 and `topk_threshold: 2.0` is not 2 (YAML and JSON give real types);
    # `.inf` (YAML) and `1e999` (JSON) are not numbers a plan can use.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def check_env_refs(value: str) -> str:
    """A ``${`` that does not make a ``${NAME}`` is a typo, refused when the plan is read."""
    if "${" in ENV_REF.sub("", value):
        raise ValueError("a ${…} reference must name an environment variable: ${NAME}")
    return value


def check_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"a path on the target must start with '/', got {value!r}")
    return value
