"""The reservation worker: ReservationWorkflow and its database activities."""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Any

import asyncpg
import valkey.asyncio as valkey
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.reservation import ReservationActivities
from api.resources import valkey_url
from api.settings import Settings
from workers.runner import (
    database_pool,
    serve_until_stopped,
    steady_collections,
    stop_on_signals,
)
from workers.sweep import sweep_forever
from workflows.reservation import ReservationWorkflow

logger = logging.getLogger(__name__)
# Sleeping reservations beyond this many are evicted and replayed on their next
# task. A reservation is asleep for days, so the cache only has to carry one
# from its booking to its mail's result, and every full collection walks what
# it holds: 100 keeps those collections short and the worker near 150 MiB.
WORKFLOW_CACHE = 100
# seconds between full collections; see steady_collections
COLLECT_EVERY = 1.0


def build_worker(
    client: Client,
    *,
    settings: Settings,
    pool: asyncpg.Pool,
    cache: valkey.Valkey,
    **options: Any,
) -> Worker:
    activities = ReservationActivities(pool, cache)
    options.setdefault("max_cached_workflows", WORKFLOW_CACHE)
    if not settings.workflow_sandbox:
        options.setdefault("workflow_runner", UnsandboxedWorkflowRunner())
    return Worker(
        client,
        task_queue=settings.reservation_task_queue,
        workflows=[ReservationWorkflow],
        activities=[
            activities.claim_seat,
            activities.release_seat,
            activities.read_row,
            activities.record_status,
            activities.revert_move,
        ],
        **options,
    )


async def serve(settings: Settings) -> None:
    async with (
        stop_on_signals() as stop,
        database_pool(settings, stop, min_size=2, max_size=20) as pool,
        aclosing(valkey.from_url(valkey_url(settings))) as cache,
        steady_collections(COLLECT_EVERY),
    ):
        sweeps: list[asyncio.Task[None]] = []

        def build(client: Client) -> Worker:
            # each replacement worker has a new client; the sweep follows it
            for sweep in sweeps:
                sweep.cancel()
            activities = ReservationActivities(pool, cache)
            sweeps[:] = [asyncio.create_task(sweep_forever(client, activities))]
            return build_worker(client, settings=settings, pool=pool, cache=cache)

        try:
            await serve_until_stopped(settings, build, stop)
        finally:
            for sweep in sweeps:
                sweep.cancel()


def main() -> None:
    # the same start as `tlounge worker reservation`: one way in, one set of checks
    from api.cli import main as cli_main

    cli_main(["worker", "reservation"])


if __name__ == "__main__":
    main()
