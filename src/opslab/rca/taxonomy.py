"""The failure categories and their evidence rules, as data (``categories.yaml`` beside this module, and a
user's ``rca-categories.yaml`` in their knowledge folder on top of it).

A user's file takes the same shape: a category with a built-in id replaces that category's rules (its
words stay the runbook's unless given); a new one is placed before ``before`` (an id; default: just before
``unknown``) and may carry its own words (``title``, ``description``, ``verification_steps``,
``actions``) or name a runbook of theirs (``runbook``). A bad file is an ``InvalidInput`` naming the file
and the field, so it is found when the service starts, not at the first RCA.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opslab.errors import InvalidInput, invalid_from_pydantic
from opslab.wire.rca import ActionItem, Evidence

SHIPPED = Path(__file__).with_name("categories.yaml")
USER_FILE = "rca-categories.yaml"
UNKNOWN = "unknown"


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["code_change", "config_change", "monitoring", "process", "investigation"] = "investigation"
    title: str
    description: str = ""
    priority: Literal["high", "medium", "low"] = "medium"


class _Category(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    title: str | None = None
    patterns: list[str] = Field(default_factory=list)
    error_classes: list[str] = Field(default_factory=list)
    status_codes: list[int] = Field(default_factory=list)
    before: str | None = None
    description: str | None = None
    verification_steps: list[str] = Field(default_factory=list)
    actions: list[_Action] = Field(default_factory=list)
    runbook: str | None = None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[_Category]


@dataclass(frozen=True)
class CategoryRule:
    """One category: how evidence earns it, and (a user's own) the words of its report."""

    id: str
    title: str
    patterns: tuple[re.Pattern[str], ...] = ()
    error_classes: tuple[re.Pattern[str], ...] = ()
    status_codes: frozenset[int] = frozenset()
    description: str | None = None
    verification_steps: tuple[str, ...] = ()
    actions: tuple[ActionItem, ...] = ()
    runbook: str | None = None
    runbook_title: str | None = None

    @property
    def own_words(self) -> bool:
        """Whether the report's words come from this rule (a user's) rather than a built-in runbook."""
        return self.description is not None

    def matches(self, text: str, error_class: str, status_code: int | None) -> bool:
        return (
            (status_code is not None and status_code in self.status_codes)
            or (bool(error_class) and any(p.search(error_class) for p in self.error_classes))
            or any(p.search(text) for p in self.patterns)
        )


@dataclass(frozen=True)
class Taxonomy:
    rules: tuple[CategoryRule, ...]
    by_id: dict[str, CategoryRule] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {r.id: r for r in self.rules})

    @property
    def precedence(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    def categorize(self, ev: Evidence) -> list[str]:
        """The categories this evidence's words, error class and status code support, in precedence
        order (with those it already carries)."""
        a = ev.attributes
        status = a.get("status_code") if isinstance(a.get("status_code"), int) else None
        error_class = str(a.get("error_class") or "")
        text = f"{ev.title} {ev.snippet}"
        found = set(ev.categories)
        for rule in self.rules:
            if rule.matches(text, error_class, status):
                found.add(rule.id)
        return [c for c in self.precedence if c in found] + sorted(found - set(self.precedence))


def _compile(patterns: list[str], where: str) -> tuple[re.Pattern[str], ...]:
    out = []
    for i, p in enumerate(patterns):
        try:
            out.append(re.compile(p, re.I))
        except re.error as exc:
            raise InvalidInput.for_field(f"{where}[{i}]", f"not a regular expression: {exc}") from None
    return tuple(out)


def _rule(c: _Category, base: CategoryRule | None, where: str) -> CategoryRule:
    return CategoryRule(
        id=c.id,
        title=c.title or (base.title if base else c.id.replace("_", " ")),
        patterns=_compile(c.patterns, f"{where}.patterns") if c.patterns or not base else base.patterns,
        error_classes=(
            _compile(c.error_classes, f"{where}.error_classes")
            if c.error_classes or not base
            else base.error_classes
        ),
        status_codes=frozenset(c.status_codes) if c.status_codes or not base else base.status_codes,
        description=c.description or (base.description if base else None),
        verification_steps=tuple(c.verification_steps) or (base.verification_steps if base else ()),
        actions=tuple(ActionItem(**a.model_dump()) for a in c.actions) or (base.actions if base else ()),
        runbook=c.runbook or (base.runbook if base else None),
    )


def _read(path: Path) -> _File:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        return _File.model_validate(data)
    except yaml.YAMLError as exc:
        raise InvalidInput.for_field(str(path), f"not YAML: {exc}") from None
    except ValidationError as exc:
        err = invalid_from_pydantic(list(exc.errors(include_url=False)))
        raise InvalidInput(f"{path}: {err.message}", details={**err.details, "file": str(path)}) from None


@functools.cache
def shipped() -> Taxonomy:
    """The built-in categories (``categories.yaml``)."""
    found = _read(SHIPPED).categories
    return Taxonomy(tuple(_rule(c, None, f"categories[{i}]") for i, c in enumerate(found)))


def _with_runbook(rule: CategoryRule, knowledge_dir: Path, where: str) -> CategoryRule:
    """A user's category that names a runbook takes its words from it (the runbook's own fields win
    over nothing, never over words the category gives itself)."""
    from opslab.knowledge import KnowledgeBase

    if rule.runbook is None:
        return rule
    kb = KnowledgeBase.load(knowledge_dir)
    if rule.runbook not in kb:
        raise InvalidInput.for_field(f"{where}.runbook", f"no runbook {rule.runbook!r} in {knowledge_dir}")
    doc = kb.get(rule.runbook)
    return dataclasses.replace(
        rule,
        runbook_title=doc.title,
        description=rule.description or doc.summary,
        verification_steps=rule.verification_steps or tuple(doc.verification_steps),
        actions=rule.actions
        or tuple(
            ActionItem(type=a.type, title=a.title, description=a.description, priority=a.priority)
            for a in doc.actions
        ),
    )


def load_taxonomy(knowledge_dir: Path | None) -> Taxonomy:
    """The built-in categories with a user's ``rca-categories.yaml`` (in ``knowledge_dir``) on top."""
    base = shipped()
    user = knowledge_dir / USER_FILE if knowledge_dir is not None else None
    if knowledge_dir is None or user is None or not user.is_file():
        return base
    rules = list(base.rules)
    for i, c in enumerate(_read(user).categories):
        where = f"{user}: categories[{i}]"
        known = next((j for j, r in enumerate(rules) if r.id == c.id), None)
        if known is not None:
            rules[known] = _with_runbook(_rule(c, rules[known], where), knowledge_dir, where)
            continue
        if c.description is None and c.runbook is None:
            raise InvalidInput.for_field(
                f"{where}.description", "a new category needs its words: a description or a runbook"
            )
        anchor = c.before or UNKNOWN
        at = next((j for j, r in enumerate(rules) if r.id == anchor), None)
        if at is None:
            raise InvalidInput.for_field(f"{where}.before", f"no category {anchor!r} to place it before")
        rules.insert(at, _with_runbook(_rule(c, None, where), knowledge_dir, where))
    return Taxonomy(tuple(rules))
