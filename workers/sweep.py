"""Reservations whose workflow ended without closing them, found and cancelled.

Support staff can terminate a workflow, or ask for its cancellation, from the
Temporal UI. Either way the workflow runs none of its code again, so it never
releases its seat: the row stays active and the seat stays taken for good. The
reservation worker looks for such workflows in Temporal's visibility now and
then and cancels their reservations in the database. Each sweep also forgets
refused bookings kept past any reset of their workflows.

A run that support reset to a point in between may be left behind its row,
asleep on deadlines the row has moved past. Every few minutes the sweep looks
for open rows a deadline of whose passed a while ago and tells each run to
look at its row, which it then takes over.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.reservation import STOPPED, ReservationActivities
from proto import reservation_pb2 as pb
from workflows.reservation import LOOK_AT_ROW, WORKFLOW_NAME

logger = logging.getLogger(__name__)

ABANDONED = (
    f'WorkflowType = "{WORKFLOW_NAME}"'
    ' AND ExecutionStatus != "Running" AND ExecutionStatus != "Completed"'
    ' AND ExecutionStatus != "ContinuedAsNew"'
)
SWEEP_EVERY = 30.0
# visibility records a close a moment after it happens; each look overlaps the last
OVERLAP = timedelta(minutes=10)
_PREFIX = "reservation-"
# A timer fires within seconds of its instant while a worker runs; a row this
# far past a deadline has a run that waits on something else.
LATE = timedelta(minutes=10)
NUDGE_EVERY = timedelta(minutes=5)
# one look an hour at most for a run, whichever worker's sweep finds it
NUDGED_FOR = timedelta(hours=1)


async def sweep_once(
    client: Client, activities: ReservationActivities, since: datetime | None
) -> int:
    """Cancel what workflows closed since `since` (all, when None) left open."""
    query = ABANDONED
    if since is not None:
        query += f' AND CloseTime > "{since.astimezone(UTC).isoformat()}"'
    closed = 0
    async for execution in client.list_workflows(query):
        try:
            reservation_id = uuid.UUID(execution.id.removeprefix(_PREFIX))
        except ValueError:
            continue
        # A reset ends a run as terminated and goes on in a new one: the
        # booking lives while the id's latest run does.
        latest = await client.get_workflow_handle(execution.id).describe()
        if latest.status not in STOPPED:
            continue
        if await activities.close_abandoned(reservation_id):
            closed += 1
    return closed


async def nudge_overdue(
    client: Client,
    activities: ReservationActivities,
    now: datetime,
    *,
    most: int = 500,
    page: int = 500,
) -> int:
    """Tell each run whose row is overdue by LATE to look at it, `most` a
    pass; how many were told.

    Rows told within the hour are passed over, and the list goes on past
    them, so rows that stay overdue (a run that cannot catch up) never keep
    newer ones from their turn.
    """
    told = 0
    after = None
    while told < most:
        rows = await activities.overdue(now - LATE, limit=page, after=after)
        for _, reservation_id in rows:
            if told >= most:
                break
            told += await _nudge(client, activities, reservation_id)
        if len(rows) < page:
            break
        after = rows[-1]
    return told


async def _nudge(
    client: Client, activities: ReservationActivities, reservation_id: uuid.UUID
) -> int:
    first = await activities.cache.set(
        f"sweep:nudged:{reservation_id}", 1, nx=True, ex=NUDGED_FOR
    )
    if not first:
        return 0
    handle = client.get_workflow_handle(f"{_PREFIX}{reservation_id}")
    try:
        await handle.signal(LOOK_AT_ROW, pb.LookAtRowRequest())
    except RPCError as error:
        # closed since, or stopped: the abandoned sweep's to close
        if error.status != RPCStatusCode.NOT_FOUND:
            await activities.cache.delete(f"sweep:nudged:{reservation_id}")
            raise
        return 0
    logger.info("told the run of %s to look at its overdue row", reservation_id)
    return 1


async def sweep_forever(
    client: Client, activities: ReservationActivities, every: float = SWEEP_EVERY
) -> None:
    since: datetime | None = None
    # timers due while no worker ran fire on its return: none is overdue till
    # they have had their turn
    next_nudge = datetime.now(UTC) + LATE
    while True:
        began = datetime.now(UTC)
        try:
            await sweep_once(client, activities, since)
            since = began - OVERLAP
            await activities.forget_refusals()
            if began >= next_nudge:
                await nudge_overdue(client, activities, began)
                next_nudge = began + NUDGE_EVERY
        # a sweep that fails (Temporal or PostgreSQL away) is simply made again
        except Exception as error:  # noqa: BLE001
            logger.warning("sweep for abandoned reservations failed: %s", error)
        await asyncio.sleep(every)
