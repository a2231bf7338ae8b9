"""PromQL templates rendered per window, and Prometheus's answers read as one number per window or refused,
against a real HTTP server on a free port that answers as Prometheus's ``/api/v1/query`` does."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from opslab.api import ServerThread
from opslab.canary.metrics_plan import CustomMetric, PrometheusSpec
from opslab.canary.prometheus import (
    PrometheusSource,
    WindowMetrics,
    WindowSpan,
    aggregate_arm,
    aggregate_custom,
    render_query,
)
from opslab.errors import Unavailable
from tests.ports import free_port

SPAN = WindowSpan(arm="B", start=1700000000.0, counted_from=1700000002.0, end=1700000039.25)


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"pod": f"p{i}"}, "value": [SPAN.end, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@dataclass
class FakePrometheus:
    """Answers each query from ``answers`` (status, JSON body or raw text); anything else: no data."""

    url: str = ""
    answers: dict[str, tuple[int, dict[str, Any] | str]] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        def query(request: Request) -> Response:
            params = dict(request.query_params)
            self.seen.append(params)
            status, body = self.answers.get(params.get("query", ""), (200, vector()))
            if isinstance(body, str):
                return PlainTextResponse(body, status_code=status)
            return JSONResponse(body, status_code=status)

        return Starlette(routes=[Route("/api/v1/query", query)])


@pytest.fixture
def fake() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    with ServerThread(server.app()) as thread:
        server.url = thread.url
        yield server


def spec(**queries: Any) -> PrometheusSpec:
    return PrometheusSpec.model_validate({"url": "${PROM_URL}", "settle_sec": 0.0, **queries})


def read_one(fake: FakePrometheus, answer: tuple[int, dict[str, Any] | str]) -> float | None:
    fake.answers["q"] = answer
    with closing(PrometheusSource(spec(p95_ms="q", error_rate_pct="e"), url=fake.url)) as source:
        return source.read_window(SPAN).p95_ms


def test_render_fills_every_placeholder_for_the_window() -> None:
    template = 'sum(rate(x{arm="{{arm}}",{{ selector }}}[{{range}}])) @ {{end}} - {{start}}'
    assert render_query(template, SPAN, 'version="v2"') == (
        'sum(rate(x{arm="B",version="v2"}[37s])) @ 1700000039.250 - 1700000002'
    )


def test_render_range_is_whole_seconds_and_at_least_one() -> None:
    short = WindowSpan(arm="A", start=10.0, counted_from=10.0, end=10.3)
    assert render_query("[{{range}}]", short, "") == "[1s]"
    assert render_query("[{{range}}] {{selector}}", SPAN, "") == "[37s] "


def test_a_one_sample_vector_is_its_number_asked_at_the_window_end(fake: FakePrometheus) -> None:
    fake.answers["p95"] = (200, vector("35.5"))
    fake.answers["err"] = (200, vector("0"))
    fake.answers["sum(rate(up[37s]))"] = (200, vector("200"))
    custom = [
        CustomMetric(name="cpu", query="cpu{{selector}}", fail_worse_by=10),
        CustomMetric(name="p99", stat="p99", fail_worse_by=10),  # the load generator's, not ours
    ]
    plan = spec(p95_ms="p95", error_rate_pct="err", throughput_qps="sum(rate(up[{{range}}]))")
    plan.selector["B"] = '{version="v2"}'
    with closing(PrometheusSource(plan, url=fake.url + "/", custom=custom)) as source:
        window = source.read_window(SPAN)
    assert window == WindowMetrics(
        arm="B",
        start=SPAN.start,
        end=SPAN.end,
        p95_ms=35.5,
        error_rate_pct=0.0,
        throughput_qps=200.0,
        custom={"cpu": None},
        queries=["p95", "err", "sum(rate(up[37s]))", 'cpu{version="v2"}'],
    )
    assert [s["time"] for s in fake.seen] == ["1700000039.250"] * 4


def test_a_scalar_is_its_number(fake: FakePrometheus) -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [SPAN.end, "0.25"]}}
    assert read_one(fake, (200, body)) == 0.25


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
def test_nan_and_infinities_are_no_data(fake: FakePrometheus, value: str) -> None:
    assert read_one(fake, (200, vector(value))) is None


def test_an_empty_vector_is_no_data(fake: FakePrometheus) -> None:
    assert read_one(fake, (200, vector())) is None


def test_several_series_must_be_aggregated(fake: FakePrometheus) -> None:
    with pytest.raises(Unavailable, match=r"'q' returned 3 series.*sum\(\.\.\.\)"):
        read_one(fake, (200, vector("1", "2", "3")))


def test_a_range_vector_is_refused(fake: FakePrometheus) -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    with pytest.raises(Unavailable, match="returned a matrix"):
        read_one(fake, (200, body))


def test_prometheus_refusing_a_query_names_it_and_its_error(fake: FakePrometheus) -> None:
    body = {"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected ']'"}
    with pytest.raises(Unavailable, match=r"query 'q' failed: 1:5: parse error") as caught:
        read_one(fake, (400, body))
    assert caught.value.details["error_type"] == "bad_data"


def test_an_answer_that_is_not_prometheus_json_is_refused(fake: FakePrometheus) -> None:
    with pytest.raises(Unavailable, match=r"'q': HTTP 502, not Prometheus's JSON: 'Bad Gateway'"):
        read_one(fake, (502, "Bad Gateway"))


def test_an_unreachable_prometheus_names_the_query_but_not_the_password() -> None:
    url = f"http://reader:s3cret@127.0.0.1:{free_port()}"
    source = PrometheusSource(spec(p95_ms="q", error_rate_pct="e"), url=url)
    with closing(source), pytest.raises(Unavailable, match="'q'") as caught:
        source.read_window(SPAN)
    assert "s3cret" not in caught.value.message


def test_a_window_waits_for_its_last_scrape_unless_read_late(fake: FakePrometheus) -> None:
    slept: list[float] = []
    plan = spec(p95_ms="q", error_rate_pct="e", settle_sec=2.0)
    source = PrometheusSource(plan, url=fake.url, sleep=slept.append, now=lambda: SPAN.end + 0.5)
    late = PrometheusSource(plan, url=fake.url, sleep=slept.append, now=lambda: SPAN.end + 10)
    with closing(source), closing(late):
        source.read_window(SPAN)
        late.read_window(SPAN)
    assert slept == [1.5]


def test_a_client_passed_in_stays_open(fake: FakePrometheus) -> None:
    with httpx.Client() as http:
        PrometheusSource(spec(p95_ms="q", error_rate_pct="e"), url=fake.url, http=http).close()
        assert not http.is_closed


def window(arm: str, p95: float | None, cpu: float | None = None) -> WindowMetrics:
    return WindowMetrics.model_validate(
        {
            "arm": arm,
            "start": 0.0,
            "end": 1.0,
            "p95_ms": p95,
            "error_rate_pct": None,
            "throughput_qps": 100.0,
            "custom": {"cpu": cpu},
            "queries": [],
        }
    )


def test_an_arm_is_the_mean_of_its_windows_with_data() -> None:
    windows = [window("A", 30.0, 1.0), window("A", None), window("A", 34.0, 2.0)]
    assert aggregate_arm(windows, "p95_ms") == 32.0
    assert aggregate_arm(windows, "error_rate_pct") is None
    assert aggregate_custom(windows, "cpu") == 1.5
    assert aggregate_custom(windows, "memory") is None
    assert aggregate_arm([], "p95_ms") is None
    assert math.isclose(aggregate_arm(windows, "throughput_qps") or 0, 100.0)


def test_aggregating_refuses_mixed_arms_and_unknown_fields() -> None:
    with pytest.raises(ValueError, match="one arm"):
        aggregate_arm([window("A", 1.0), window("B", 2.0)], "p95_ms")
    with pytest.raises(ValueError, match="unknown field"):
        aggregate_arm([window("A", 1.0)], "p50_ms")
