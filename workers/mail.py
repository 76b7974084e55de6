"""The mail worker: its own task queue, so mail is scaled and throttled apart."""

from __future__ import annotations

import logging

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from activities.mail import MailActivities
from api.settings import Settings
from workers.runner import (
    database_pool,
    serve_until_stopped,
    stop_on_signals,
    worker_main,
)

logger = logging.getLogger(__name__)
# SMTP servers throttle per connection; a few at once is kind to them.
MAX_CONCURRENT_SENDS = 8


def build_worker(client: Client, *, settings: Settings, pool: asyncpg.Pool) -> Worker:
    activities = MailActivities(pool, settings)
    return Worker(
        client,
        task_queue=settings.mail_task_queue,
        activities=[activities.send_mail],
        max_concurrent_activities=MAX_CONCURRENT_SENDS,
    )


async def serve(settings: Settings) -> None:
    async with (
        stop_on_signals() as stop,
        database_pool(
            settings, stop, min_size=1, max_size=MAX_CONCURRENT_SENDS
        ) as pool,
    ):
        await serve_until_stopped(
            settings,
            lambda client: build_worker(client, settings=settings, pool=pool),
            stop,
        )


def main() -> None:
    worker_main("mail", serve)


if __name__ == "__main__":
    main()
