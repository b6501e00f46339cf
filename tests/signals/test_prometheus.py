"""PrometheusQuerySource against a real Prometheus scraping an exporter this test controls."""

from __future__ import annotations

import uuid

import pytest

from adapters.signals.prometheus import PrometheusQuerySource
from tests.support.pg import eventually
from tests.support.prometheus import MetricsExporter, PrometheusServer

# Counters start high so that increase() extrapolates both series alike and the ratio comes out exact.
BASELINE_OK, BASELINE_ERRORS = 9_000.0, 1_000.0
SCRAPED_WITHIN = 15.0


def requests_metric(exporter: MetricsExporter) -> str:
    """A counter of the test's own (two series, code 200 and 500): the exporter is shared by the module."""
    name = f"app_{uuid.uuid4().hex[:8]}_requests_total"
    with exporter.update():
        exporter.set(name, BASELINE_OK, code="200")
        exporter.set(name, BASELINE_ERRORS, code="500")
    return name


async def wait_scraped(server: PrometheusServer, query: str, expected: float) -> None:
    probe = PrometheusQuerySource(server.url, query, name="probe", unit="")
    try:

        async def seen() -> bool:
            return (await probe.sample()).value == expected

        await eventually(seen, timeout=SCRAPED_WITHIN, what=f"Prometheus to answer {query} = {expected:g}")
    finally:
        await probe.close()


async def test_error_ratio_follows_the_counter(
    metrics_exporter: MetricsExporter, prometheus_server: PrometheusServer
) -> None:
    metric = requests_metric(metrics_exporter)
    query = f'sum(increase({metric}{{code=~"5.."}}[1m])) / sum(increase({metric}[1m]))'
    ratio = PrometheusQuerySource(prometheus_server.url, query)
    try:
        await wait_scraped(prometheus_server, f"sum({metric})", BASELINE_OK + BASELINE_ERRORS)
        before = await ratio.sample()
        # One sample in the window gives no data; two equal ones give 0/0 = NaN: either way, hold.
        assert before.value is None and before.error, before
        with metrics_exporter.update():
            metrics_exporter.add(metric, 25, code="200")
            metrics_exporter.add(metric, 75, code="500")

        async def moved() -> bool:
            return (await ratio.sample()).value is not None

        await eventually(moved, timeout=SCRAPED_WITHIN, what="the error ratio to reflect the new counts")
        after = await ratio.sample()
        assert after.value == pytest.approx(0.75, rel=1e-6)
        assert after.error is None
        assert after.detail == query
        assert (ratio.name, ratio.unit) == ("error-rate", "ratio")
    finally:
        await ratio.close()


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("sum(app_no_such_metric_total)", "no data"),
        ("0/0", "not a finite number: nan"),
        ("vector(1) / vector(0)", "not a finite number: inf"),
        ("sum(rate(app_requests_total[", "bad_data"),
        ("{metric}", "2 series"),
        ("{metric}[1m]", "matrix"),
    ],
)
async def test_unusable_answers_hold(
    metrics_exporter: MetricsExporter, prometheus_server: PrometheusServer, query: str, error: str
) -> None:
    if "{metric}" in query:
        metric = requests_metric(metrics_exporter)
        query = query.format(metric=metric)
        await wait_scraped(prometheus_server, f"count({metric})", 2)
    source = PrometheusQuerySource(prometheus_server.url, query)
    try:
        sample = await source.sample()
        assert sample.value is None
        assert sample.error is not None and error in sample.error, sample
        assert sample.detail == query
    finally:
        await source.close()


async def test_stopped_prometheus_holds(lone_prometheus: PrometheusServer) -> None:
    source = PrometheusQuerySource(lone_prometheus.url, "vector(0.25)", timeout=1.0)
    try:
        healthy = await source.sample()
        assert healthy.value == 0.25 and healthy.error is None
        lone_prometheus.stop()
        stopped = await source.sample()
        assert stopped.value is None
        assert stopped.error is not None and "unreachable" in stopped.error, stopped
        assert f"127.0.0.1:{lone_prometheus.port}" in stopped.error
    finally:
        await source.close()
