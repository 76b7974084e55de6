"""The baseline workflows: update-with-start and one trivial local activity.

The same shape as a booking's first workflow task with nothing of ours in it,
served by its own small worker on its own task queues:
`python -m tests.bench.bare <temporal address> <task queue>`.

Two of them. The bare workflow is Temporal's floor for a booking. The mailing
one also runs one trivial activity on a second task queue, as a booking's
confirmation mail does on the mail queue: the floor for a booking that must
send a mail through a worker of its own. Either can start `labelled`, with the
six search attributes and the summary a booking carries for support staff,
which Temporal indexes and stores on every start.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from workflows.reservation import (
    CLIENT_ID,
    COWORKING_ID,
    NOTIFICATION_STATUS,
    RESERVATION_START,
    RESERVATION_STATUS,
    SEAT_ID,
)

# Long enough to outlive the benchmark, as a reservation sleeps until its reminder.
SLEEP = timedelta(days=3)
TIMEOUT = timedelta(seconds=15)


@activity.defn(name="bench_noop")
async def noop(value: str) -> str:
    return value


@workflow.defn(name="BenchBareWorkflow")
class BareWorkflow:
    def __init__(self) -> None:
        self._held: str | None = None

    @workflow.run
    async def run(self, value: str) -> str:
        self._held = await workflow.execute_local_activity(
            noop, value, start_to_close_timeout=TIMEOUT
        )
        await workflow.sleep(SLEEP)
        return self._held

    @workflow.update(name="hold")
    async def hold(self, value: str) -> str:
        await workflow.wait_condition(lambda: self._held is not None)
        assert self._held is not None
        return self._held


@workflow.defn(name="BenchMailingWorkflow")
class MailingWorkflow(BareWorkflow):
    @workflow.run
    async def run(self, value: str) -> str:
        self._held = await workflow.execute_local_activity(
            noop, value, start_to_close_timeout=TIMEOUT
        )
        await workflow.execute_activity(
            noop, value, task_queue=mail_queue(workflow.info().task_queue),
            start_to_close_timeout=TIMEOUT,
        )  # fmt: skip
        await workflow.sleep(SLEEP)
        return self._held


def mail_queue(task_queue: str) -> str:
    return f"{task_queue}-mail"


def labels() -> dict[str, Any]:
    """What a booking's start carries for support staff, of the same sizes."""
    return {
        "search_attributes": TypedSearchAttributes(
            [
                SearchAttributePair(CLIENT_ID, str(uuid.uuid4())),
                SearchAttributePair(COWORKING_ID, str(uuid.uuid4())),
                SearchAttributePair(SEAT_ID, str(uuid.uuid4())),
                SearchAttributePair(RESERVATION_START, datetime.now(UTC)),
                SearchAttributePair(RESERVATION_STATUS, "confirmed"),
                SearchAttributePair(NOTIFICATION_STATUS, "ok"),
            ]
        ),
        "static_summary": "Ada Lovelace · seat 12 at Berlin · Tue 05 Jan 2027"
        " 10:00–11:00 CET",
    }


async def start_bare(
    client: Client, task_queue: str, *, mailing: bool = False, labelled: bool = False
) -> str | None:
    """One update-with-start of a baseline workflow; its id once it answered."""
    value = uuid.uuid4().hex
    workflow_id = f"bench-bare-{value}"
    run = MailingWorkflow.run if mailing else BareWorkflow.run
    operation = WithStartWorkflowOperation(
        run,
        value,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        **(labels() if labelled else {}),
    )
    result = await client.execute_update_with_start_workflow(
        BareWorkflow.hold, value, start_workflow_operation=operation
    )
    return workflow_id if result == value else None


def build_workers(client: Client, task_queue: str) -> list[Worker]:
    """On the reservation worker's workflow runner, so that only our code differs."""
    return [
        Worker(
            client,
            task_queue=task_queue,
            workflows=[BareWorkflow, MailingWorkflow],
            activities=[noop],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
        Worker(client, task_queue=mail_queue(task_queue), activities=[noop]),
    ]


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    workflows, mails = build_workers(client, task_queue)
    async with workflows, mails:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
