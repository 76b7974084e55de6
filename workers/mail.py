"""The mail worker: its own task queue, so mail is scaled and throttled apart."""

from __future__ import annotations

import logging

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from activities.mail import MailActivities
from activities.smtp_pool import SmtpConnections
from api.db import create_pool
from api.resources import database_url
from api.settings import Settings
from workers.runner import connect_with_retry, run_until_signal, worker_main

logger = logging.getLogger(__name__)
# SMTP servers throttle per connection; a few at once is kind to them.
MAX_CONCURRENT_SENDS = 8


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


async def serve(settings: Settings) -> None:
    pool = await create_pool(
        database_url(settings), min_size=1, max_size=MAX_CONCURRENT_SENDS
    )
    smtp = smtp_connections(settings)
    try:
        client = await connect_with_retry(settings)
        await run_until_signal(
            build_worker(client, settings=settings, pool=pool, smtp=smtp)
        )
    finally:
        await smtp.close()
        await pool.close()


def main() -> None:
    worker_main("mail", serve)


if __name__ == "__main__":
    main()
