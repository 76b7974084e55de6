"""The mail worker: its own task queue, so mail is scaled and throttled apart."""

from __future__ import annotations

import logging
import os

import asyncpg
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.mail import MailActivities
from activities.smtp_pool import SmtpConnections
from api.settings import Settings
from workers.runner import (
    database_pool,
    serve_until_stopped,
    stop_on_signals,
)

logger = logging.getLogger(__name__)
# SMTP servers throttle per connection; a few at once is kind to them.
MAX_CONCURRENT_SENDS = 8


# the mail server's own answers: a traceback of the worker's frames says
# nothing that the error's type and text do not
_SERVER_SAID = frozenset({"MailUnreachable", "MailDeferred", "MailRejected"})


class OneLineForServerFailures(logging.Filter):
    """The SDK logs each failed attempt with its traceback, some 45 lines;
    during an SMTP outage that is every attempt of every mail. A failure the
    mail server caused is told on the warning's own line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ApplicationError) and error.type in _SERVER_SAID:
            record.msg = f"{record.getMessage()}: {error.type}: {error.message}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def smtp_connections(settings: Settings) -> SmtpConnections:
    return SmtpConnections(settings, size=MAX_CONCURRENT_SENDS)


def build_worker(
    client: Client, *, settings: Settings, pool: asyncpg.Pool, smtp: SmtpConnections
) -> Worker:
    activities = MailActivities(pool, settings, smtp)
    return Worker(
        client,
        task_queue=settings.mail_task_queue,
        activities=[activities.send_mail],
        max_concurrent_activities=MAX_CONCURRENT_SENDS,
    )


def yield_to_bookings(settings: Settings) -> int:
    """Lower this process's CPU priority to the configured niceness, never raise
    it (that takes privileges); the niceness it then runs at."""
    current = os.nice(0)
    if settings.mail_worker_nice > current:
        current = os.nice(settings.mail_worker_nice - current)
    return current


async def serve(settings: Settings) -> None:
    logger.info(
        "mail worker at niceness %d, sending through %s:%d",
        yield_to_bookings(settings), settings.smtp_host or "127.0.0.1",
        settings.smtp_port,
    )  # fmt: skip
    logging.getLogger("temporalio.activity").addFilter(OneLineForServerFailures())
    smtp = smtp_connections(settings)
    try:
        async with (
            stop_on_signals() as stop,
            database_pool(
                settings, stop, min_size=1, max_size=MAX_CONCURRENT_SENDS
            ) as pool,
        ):
            await serve_until_stopped(
                settings,
                lambda client: build_worker(
                    client, settings=settings, pool=pool, smtp=smtp
                ),
                stop,
            )
    finally:
        await smtp.close()


def main() -> None:
    # the same start as `tlounge worker mail`: one way in, one set of checks
    from api.cli import main as cli_main

    cli_main(["worker", "mail"])


if __name__ == "__main__":
    main()
