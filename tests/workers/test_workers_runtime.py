import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
import uvloop
from prometheus_client import REGISTRY

from api import cli
from api.ops_runtime import time_collections
from workers.runner import steady_collections


class Node:
    pass


@pytest.fixture
def no_automatic_full_collections() -> Iterator[None]:
    """Young collections as usual; the oldest generation only when asked."""
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], 10**9)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def test_loop_factory_uvloop_for_servers_asyncio_for_ops_commands() -> None:
    cli._load_command_modules()
    assert cli.loop_factory("api") is uvloop.new_event_loop
    assert cli.loop_factory("worker") is uvloop.new_event_loop
    assert cli.loop_factory("migrate") is None
    assert cli.loop_factory("dev") is None


async def test_steady_collections_free_an_old_cycle_the_thresholds_leave(
    no_automatic_full_collections: None,
) -> None:
    node = Node()
    node.itself = node
    alive = weakref.ref(node)
    # a survivor of a full pass sits in the oldest generation
    gc.collect()
    del node
    # enough new objects for a few young collections since that pass
    churn = [[] for _ in range(20_000)]
    await asyncio.sleep(0.2)
    assert alive() is not None
    assert gc.get_count()[2] > 0

    async with steady_collections(0.05):
        await asyncio.sleep(0.3)

    assert alive() is None
    assert len(churn) == 20_000


async def test_steady_collections_stop_with_their_context() -> None:
    async with steady_collections(0.05):
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        collector = next(
            task for task in tasks if task.get_coro().__name__ == "collect"
        )
    assert collector.cancelled()


def test_time_collections_counts_each_pass_by_generation() -> None:
    def passes() -> float:
        value = REGISTRY.get_sample_value(
            "tlounge_gc_pause_seconds_count", {"generation": "2"}
        )
        return value or 0.0

    before = len(gc.callbacks)
    time_collections()
    try:
        counted = passes()
        gc.collect()
        gc.collect()
        assert passes() == counted + 2
        assert len(gc.callbacks) == before + 1
    finally:
        gc.callbacks.pop()
