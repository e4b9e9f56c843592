"""Prometheus text for `/metrics`: requests, latency, errors by status, pool use, release.

A dependency-free registry: a few counters and one histogram under a lock, rendered in
the text exposition format. Counts are per worker process (a scrape reaches one worker);
each sample carries the worker's pid so scrapes of different workers do not collide.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Mapping

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Latency buckets in seconds, finest where lookups land."""


def _escaped(value: object) -> str:
    """A label value as the exposition format writes it (the method comes from clients)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_escaped(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """What the app counts; `observe` is called once per answered request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str, int]] = Counter()
        self._buckets: Counter[tuple[str, float]] = Counter()
        self._sums: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            self._sums[route] += seconds
            self._counts[route] += 1
            for bound in BUCKETS:
                if seconds <= bound:
                    self._buckets[(route, bound)] += 1

    def render(self, pool: Mapping[str, int], release: str | None) -> str:
        """The exposition text; `pool` is psycopg_pool's stats, `release` the served one."""
        pid = os.getpid()
        lines = [
            "# HELP cnpj_api_requests_total Requests answered, by method, route and status.",
            "# TYPE cnpj_api_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), count in sorted(self._requests.items()):
                labels = _labels(method=method, route=route, status=status, pid=pid)
                lines.append(f"cnpj_api_requests_total{labels} {count}")
            lines += [
                "# HELP cnpj_api_errors_total Answers with a status of 400 or more, by status.",
                "# TYPE cnpj_api_errors_total counter",
            ]
            errors: Counter[int] = Counter()
            for (_, _, status), count in self._requests.items():
                if status >= 400:
                    errors[status] += count
            lines += [
                f"cnpj_api_errors_total{_labels(status=s, pid=pid)} {c}"
                for s, c in sorted(errors.items())
            ]
            lines += [
                "# HELP cnpj_api_request_seconds Time from request to answer, by route.",
                "# TYPE cnpj_api_request_seconds histogram",
            ]
            for route in sorted(self._counts):
                for bound in BUCKETS:
                    labels = _labels(route=route, le=bound, pid=pid)
                    lines.append(
                        f"cnpj_api_request_seconds_bucket{labels} {self._buckets[(route, bound)]}"
                    )
                total = self._counts[route]
                lines.append(
                    f"cnpj_api_request_seconds_bucket{_labels(route=route, le='+Inf', pid=pid)} "
                    f"{total}"
                )
                lines.append(
                    f"cnpj_api_request_seconds_sum{_labels(route=route, pid=pid)} "
                    f"{self._sums[route]:.6f}"
                )
                lines.append(
                    f"cnpj_api_request_seconds_count{_labels(route=route, pid=pid)} {total}"
                )
        lines += [
            "# HELP cnpj_api_pool_connections Connections of the pool, by state.",
            "# TYPE cnpj_api_pool_connections gauge",
            f"cnpj_api_pool_connections{_labels(state='open', pid=pid)} {pool.get('pool_size', 0)}",
            f"cnpj_api_pool_connections{_labels(state='idle', pid=pid)} "
            f"{pool.get('pool_available', 0)}",
            f"cnpj_api_pool_connections{_labels(state='max', pid=pid)} {pool.get('pool_max', 0)}",
            "# HELP cnpj_api_pool_waiting Requests waiting for a connection.",
            "# TYPE cnpj_api_pool_waiting gauge",
            f"cnpj_api_pool_waiting{_labels(pid=pid)} {pool.get('requests_waiting', 0)}",
            "# HELP cnpj_api_served_release The release cnpj_current shows (1 for that release).",
            "# TYPE cnpj_api_served_release gauge",
        ]
        if release is not None:
            lines.append(f"cnpj_api_served_release{_labels(release=release, pid=pid)} 1")
        return "\n".join(lines) + "\n"
