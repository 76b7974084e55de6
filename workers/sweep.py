"""Reservations whose workflow ended without closing them, found and cancelled.

Support staff can terminate a workflow, or ask for its cancellation, from the
Temporal UI. Either way the workflow runs none of its code again, so it never
releases its seat: the row stays active and the seat stays taken for good. The
reservation worker looks for such workflows in Temporal's visibility now and
then and cancels their reservations in the database. Each sweep also forgets
refused bookings kept past any reset of their workflows.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import Client

from activities.reservation import STOPPED, ReservationActivities
from workflows.reservation import WORKFLOW_NAME

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


async def sweep_forever(
    client: Client, activities: ReservationActivities, every: float = SWEEP_EVERY
) -> None:
    since: datetime | None = None
    while True:
        began = datetime.now(UTC)
        try:
            await sweep_once(client, activities, since)
            since = began - OVERLAP
            await activities.forget_refusals()
        # a sweep that fails (Temporal or PostgreSQL away) is simply made again
        except Exception as error:  # noqa: BLE001
            logger.warning("sweep for abandoned reservations failed: %s", error)
        await asyncio.sleep(every)
