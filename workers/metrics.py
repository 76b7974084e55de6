"""The project's own metrics, counted by activities, and the workers' exporters.

Activities run at least once, so a counter here counts what an activity did
(a row claimed, a mail handed to SMTP), never how often it was attempted.
Workflow code must not touch these: it replays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from http.server import HTTPServer
from typing import Literal, Protocol

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from api.settings import Settings

logger = logging.getLogger(__name__)

FAILURE_TRANSIENT = "transient"
FAILURE_PERMANENT = "permanent"

RESERVATIONS_CREATED = Counter(
    "tlounge_reservations_created", "Reservations whose seat was claimed"
)
RESERVATIONS_CONFIRMED = Counter(
    "tlounge_reservations_confirmed", "Held reservations that were confirmed"
)
RESERVATIONS_CANCELLED = Counter(
    "tlounge_reservations_cancelled", "Reservations cancelled by a client or an admin"
)
RESERVATIONS_EXPIRED = Counter(
    "tlounge_reservations_expired", "Holds released because nobody confirmed in time"
)
RESERVATIONS_NO_SHOW = Counter(
    "tlounge_reservations_no_show", "Seats released because nobody checked in"
)
BOOKING_CONFLICTS = Counter(
    "tlounge_booking_conflicts", "Bookings refused because the slot was taken"
)
MAILS_SENT = Counter(
    "tlounge_mails_sent", "Mails accepted by the SMTP server", ["kind"]
)
MAILS_FAILED = Counter(
    "tlounge_mails_failed",
    "Mail attempts that failed; reason is transient (retried) or permanent",
    ["kind", "reason"],
)
REMINDER_LATENESS = Histogram(
    "tlounge_reminder_lateness_seconds",
    "Seconds between the instant a reminder was due and its send",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)


# which process counts what: the API imports the activities for their
# rules, and a worker serves both kinds' modules, so each process has every
# counter registered but moves only its own
_COUNTED_BY = {
    "reservation": frozenset({
        "tlounge_reservations_created", "tlounge_reservations_confirmed",
        "tlounge_reservations_cancelled", "tlounge_reservations_expired",
        "tlounge_reservations_no_show", "tlounge_booking_conflicts",
    }),
    "mail": frozenset({
        "tlounge_mails_sent", "tlounge_mails_failed",
        "tlounge_reminder_lateness_seconds",
    }),
    # its requests, and the cancels it writes for workflows ended from the
    # Temporal UI; the workers' command line imports the API's modules too
    "api": frozenset({
        "tlounge_http_requests", "tlounge_http_request_duration_seconds",
        "tlounge_http_requests_in_progress", "tlounge_reservations_cancelled",
    }),
}  # fmt: skip
Process = Literal["api", "reservation", "mail"]


class _Source(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _Without:
    """The registry less the families another process counts, which would
    read 0 here as if nothing had happened."""

    def __init__(self, source: _Source, hidden: frozenset[str]) -> None:
        self._source, self._hidden = source, hidden

    def collect(self) -> Iterator[Metric]:
        return (m for m in self._source.collect() if m.name not in self._hidden)

    def restricted_registry(self, names: Iterable[str]) -> _Without:
        # a scrape that asks for some families by name (`name[]=`)
        return _Without(REGISTRY.restricted_registry(names), self._hidden)


def served_by(process: Process) -> _Without:
    everyone = frozenset().union(*_COUNTED_BY.values())
    return _Without(REGISTRY, everyone - _COUNTED_BY[process])


def observe_reminder_lateness(*, due: datetime, sent: datetime) -> float:
    """Record one reminder; early sends (clock skew) count as on time."""
    lateness = max(0.0, (sent - due).total_seconds())
    REMINDER_LATENESS.observe(lateness)
    return lateness


def start_metrics_server(settings: Settings, process: Process) -> HTTPServer | None:
    """Serve this process's metrics when TLOUNGE_WORKER_METRICS_PORT is set."""
    if not settings.worker_metrics_port:
        return None
    try:
        server, _thread = start_http_server(
            settings.worker_metrics_port, addr=settings.metrics_host,
            registry=served_by(process),  # type: ignore[arg-type]
        )  # fmt: skip
    except OSError as error:
        raise SystemExit(
            f"tlounge: cannot serve metrics on {settings.metrics_host}:"
            f"{settings.worker_metrics_port}: {error.strerror}"
        ) from error
    logger.info(
        "metrics on http://%s:%s/metrics",
        settings.metrics_host, settings.worker_metrics_port,
    )  # fmt: skip
    return server


def temporal_runtime(settings: Settings) -> Runtime:
    """The SDK's own metrics (task latency, failures, slots) on their own port.

    A Runtime owns threads and its exporter's socket: build one per process
    and hand it to every client of that process.
    """
    if not settings.temporal_metrics_port:
        return Runtime.default()
    address = f"{settings.metrics_host}:{settings.temporal_metrics_port}"
    try:
        runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address))
        )
    except ValueError as error:
        # the SDK reports a port it cannot bind as a ValueError
        raise SystemExit(f"tlounge: cannot serve SDK metrics: {error}") from error
    logger.info("Temporal SDK metrics on http://%s/metrics", address)
    return runtime
