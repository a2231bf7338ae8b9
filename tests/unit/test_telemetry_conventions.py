"""Span readers per convention and the trace -> run mapping: which span starts a run, tokens counted once,
the model from the LLM spans, cost from the price table."""

from __future__ import annotations

import json
from typing import Any

from opslab.telemetry import PriceTable, Span, load_prices, map_trace, parse_request, read_span
from tests.otlp_json import export, span

T = "0af7651916cd43dd8448eb211c80319c"
PRICES = load_prices()


def spans(*items: dict[str, Any]) -> list[Span]:
    parsed, refused = parse_request(export(list(items)))
    assert refused == []
    return parsed


def one_run(*items: dict[str, Any], prices: PriceTable = PRICES) -> Any:
    mapped = map_trace(spans(*items), prices=prices)
    assert len(mapped.runs) == 1, [r.run_id for r in mapped.runs]
    return mapped.runs[0]


def test_each_convention_is_read_from_its_own_attributes() -> None:
    oi, tl, lf, ge = spans(
        span(
            T,
            "01",
            "llm",
            openinference__span__kind="LLM",
            llm__model_name="gpt-4o",
            llm__token_count__prompt=10,
            llm__token_count__completion=2,
            session__id="s",
            tag__tags='["a","b"]',
        ),
        span(
            T,
            "02",
            "openai.chat",
            parent="01",
            gen_ai__system="openai",
            llm__request__type="chat",
            gen_ai__request__model="gpt-4o-mini",
            gen_ai__usage__prompt_tokens=7,
            gen_ai__usage__completion_tokens=3,
            traceloop__association__properties__user_id="u1",
        ),
        span(
            T,
            "03",
            "gen",
            parent="01",
            langfuse__observation__type="generation",
            langfuse__observation__model__name="claude-sonnet-4",
            langfuse__observation__usage_details='{"input": 5, "output": 1}',
            langfuse__observation__cost_details='{"total": 0.5}',
            langfuse__trace__tags=["x"],
        ),
        span(
            T,
            "04",
            "execute_tool lookup",
            parent="01",
            gen_ai__operation__name="execute_tool",
            gen_ai__tool__name="lookup",
            gen_ai__tool__call__arguments='{"id": 1}',
        ),
    )
    a, b, c, d = (read_span(s) for s in (oi, tl, lf, ge))
    assert (a.convention, a.kind, a.model, a.tokens_in, a.tokens_out) == (
        "openinference",
        "llm",
        "gpt-4o",
        10,
        2,
    )
    assert (a.session_id, a.tags) == ("s", ["a", "b"])
    assert (b.convention, b.kind, b.model, b.tokens_in, b.tokens_out, b.user_id) == (
        "openllmetry",
        "llm",
        "gpt-4o-mini",
        7,
        3,
        "u1",
    )
    assert (c.convention, c.kind, c.model, c.tokens_in, c.cost_usd, c.tags) == (
        "langfuse",
        "llm",
        "claude-sonnet-4",
        5,
        0.5,
        ["x"],
    )
    assert (d.convention, d.kind, d.tool_name, d.tool_args) == ("genai", "tool", "lookup", {"id": 1})


def test_usage_on_an_agent_and_its_llm_child_counts_once() -> None:
    run = one_run(
        span(
            T,
            "01",
            "invoke_agent support",
            end=10,
            gen_ai__operation__name="invoke_agent",
            gen_ai__usage__input_tokens=100,
            gen_ai__usage__output_tokens=10,
        ),
        span(
            T,
            "02",
            "chat",
            parent="01",
            start=1,
            end=5,
            gen_ai__operation__name="chat",
            gen_ai__request__model="gpt-4o-mini",
            gen_ai__usage__input_tokens=100,
            gen_ai__usage__output_tokens=10,
        ),
    )
    assert (run.cost.tokens_prompt, run.cost.tokens_completion) == (100, 10)
    assert run.model == "gpt-4o-mini"  # from the LLM span, the root names none


def test_leaf_llm_spans_win_and_a_parent_counts_only_without_them() -> None:
    run = one_run(
        span(T, "01", "agent", end=20, openinference__span__kind="AGENT", llm__token_count__prompt=999),
        span(
            T,
            "02",
            "chain",
            parent="01",
            openinference__span__kind="CHAIN",
            llm__token_count__prompt=50,
            llm__token_count__completion=5,
        ),
        span(
            T,
            "03",
            "llm",
            parent="02",
            openinference__span__kind="LLM",
            llm__model_name="gpt-4o",
            llm__token_count__prompt=30,
            llm__token_count__completion=3,
        ),
        span(
            T,
            "04",
            "llm",
            parent="02",
            openinference__span__kind="LLM",
            llm__model_name="gpt-4o",
            llm__token_count__prompt=20,
            llm__token_count__completion=2,
        ),
        span(
            T,
            "05",
            "retriever",
            parent="01",
            openinference__span__kind="RETRIEVER",
            llm__token_count__prompt=7,
            llm__token_count__completion=0,
        ),
    )
    assert (run.cost.tokens_prompt, run.cost.tokens_completion) == (57, 5)  # 30 + 20 leaves, + 7 beside them


def test_cost_comes_from_the_price_table_when_the_trace_carries_none() -> None:
    run = one_run(
        span(T, "01", "agent", end=10, openinference__span__kind="AGENT"),
        span(
            T,
            "02",
            "llm",
            parent="01",
            openinference__span__kind="LLM",
            llm__model_name="gpt-4o-mini-2024-07-18",
            llm__token_count__prompt=1_000_000,
            llm__token_count__completion=1_000_000,
        ),
    )
    assert run.cost.total_cost_usd == 0.75  # gpt-4o-mini: $0.15 in + $0.60 out per million
    assert run.attributes["cost_source"] == "price_table"
    assert (
        one_run(
            span(T, "01", "agent", end=10, openinference__span__kind="AGENT"),
            span(
                T,
                "02",
                "llm",
                parent="01",
                openinference__span__kind="LLM",
                llm__model_name="gpt-4o-mini",
                llm__token_count__prompt=10,
            ),
            prices=PriceTable(),
        ).cost.total_cost_usd
        is None
    )


def test_the_top_most_agent_like_span_is_the_run_and_spans_above_it_are_not() -> None:
    mapped = map_trace(
        spans(
            span(T, "01", "GET /chat", end=30, http__method="GET"),
            span(
                T,
                "02",
                "support.workflow",
                parent="01",
                start=1,
                end=29,
                traceloop__span__kind="workflow",
                traceloop__entity__name="support",
                traceloop__association__properties__session_id="sess",
            ),
            span(
                T,
                "03",
                "lookup.tool",
                parent="02",
                start=2,
                end=3,
                error="boom",
                traceloop__span__kind="tool",
                traceloop__entity__name="lookup",
            ),
            span(T, "04", "subagent", parent="02", start=4, end=5, traceloop__span__kind="agent"),
        )
    )
    (run,) = mapped.runs
    assert (run.run_id, run.agent_name, run.session_id) == (T, "support", "sess")
    assert [c.tool_name for c in run.tool_calls] == ["lookup"] and run.tool_calls[0].status == "failure"
    assert [s.name for s in run.steps] == ["subagent"]  # a nested agent is a step
    assert "01" not in mapped.owner and {"02", "03", "04"} <= set(mapped.owner)


def test_a_trace_with_no_agent_like_span_is_a_run_from_its_root() -> None:
    run = one_run(
        span(
            T,
            "01",
            "handle",
            end=10,
            langfuse__observation__type="span",
            user__id="u9",
            langfuse__observation__input=json.dumps({"q": "hi"}),
        ),
        span(
            T,
            "02",
            "gen",
            parent="01",
            langfuse__observation__type="generation",
            langfuse__observation__model__name="gpt-4o",
            langfuse__observation__usage_details='{"input": 4, "output": 2}',
        ),
    )
    assert (run.agent_name, run.user_id, run.model, run.cost.tokens_prompt) == ("handle", "u9", "gpt-4o", 4)
    assert run.input == '{"q":"hi"}'


def test_tool_arguments_too_deep_to_store_are_kept_as_text() -> None:
    deep = "[" * 5000 + "]" * 5000
    run = one_run(
        span(T, "01", "invoke_agent a", end=10, gen_ai__operation__name="invoke_agent"),
        span(
            T,
            "02",
            "execute_tool t",
            parent="01",
            gen_ai__operation__name="execute_tool",
            gen_ai__tool__call__arguments=deep,
        ),
    )
    assert run.tool_calls[0].args_json == {"raw": deep[:2000]}
