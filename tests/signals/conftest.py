"""Fixtures shared by the signal-source tests."""

from tests.support.prometheus import lone_prometheus, metrics_exporter, prometheus_server

__all__ = ["lone_prometheus", "metrics_exporter", "prometheus_server"]
