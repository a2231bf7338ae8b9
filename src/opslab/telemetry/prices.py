"""Model prices: what a model's tokens cost when a trace carries tokens but no cost.

The table (``prices.json`` beside this module, USD per million input and output tokens) covers common
models; ``OPSLAB_PRICE_TABLE`` names a JSON file of the same shape whose entries replace or add to it.
A model is found by its exact name, else by the longest known name it starts with
(``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``), with any ``provider/`` prefix dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opslab.errors import InvalidInput

DEFAULT_TABLE = Path(__file__).with_name("prices.json")


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, le=1e6, description="USD per 1M input (prompt) tokens.")
    output: float = Field(ge=0, le=1e6, description="USD per 1M output (completion) tokens.")


class PriceFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = 1
    models: dict[str, ModelPrice]


@dataclass(frozen=True)
class PriceTable:
    models: dict[str, ModelPrice] = field(default_factory=dict)

    def price(self, model: str | None) -> ModelPrice | None:
        if not model:
            return None
        name = model.lower().rsplit("/", 1)[-1]
        if name in self.models:
            return self.models[name]
        best = max((k for k in self.models if name.startswith(k)), key=len, default=None)
        return self.models[best] if best else None

    def cost(self, model: str | None, tokens_in: int | None, tokens_out: int | None) -> float | None:
        """USD for these tokens of ``model``; None when the model is unknown or there are no tokens."""
        price = self.price(model)
        if price is None or (tokens_in is None and tokens_out is None):
            return None
        return ((tokens_in or 0) * price.input + (tokens_out or 0) * price.output) / 1_000_000


def load_prices(override: Path | None = None) -> PriceTable:
    """The bundled table, with the entries of ``override`` (a JSON file of the same shape) on top."""
    models = dict(_read(DEFAULT_TABLE).models)
    if override is not None:
        models.update(_read(override).models)
    return PriceTable({k.lower(): v for k, v in models.items()})


def _read(path: Path) -> PriceFile:
    try:
        data: Any = json.loads(path.read_text())
        return PriceFile.model_validate(data)
    except OSError as exc:
        raise InvalidInput.for_field("price_table", f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, ValidationError) as exc:
        raise InvalidInput.for_field("price_table", f"{path}: not a price table: {exc}") from None
