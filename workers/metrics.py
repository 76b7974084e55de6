"""The project's own metrics, counted by activities, and the workers' exporters.

Activities run at least once, so a counter here counts what an activity did
(a row claimed, a mail handed to SMTP), never how often it was attempted.
Workflow code must not touch these: it replays.
"""

from __future__ import annotations

import logging
from datetime import datetime
from http.server import HTTPServer

from prometheus_client import Counter, Histogram, start_http_server
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


def observe_reminder_lateness(*, due: datetime, sent: datetime) -> float:
    """Record one reminder; early sends (clock skew) count as on time."""
    lateness = max(0.0, (sent - due).total_seconds())
    REMINDER_LATENESS.observe(lateness)
    return lateness


def start_metrics_server(settings: Settings) -> HTTPServer | None:
    """Serve this process's metrics when TLOUNGE_WORKER_METRICS_PORT is set."""
    if not settings.worker_metrics_port:
        return None
    try:
        server, _thread = start_http_server(
            settings.worker_metrics_port, addr=settings.metrics_host
        )
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
