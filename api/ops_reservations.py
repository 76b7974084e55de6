"""Ops subcommands for reservations, notifications, the cache and demo data.

    tlounge notifications failed            # reservations whose mail failed
    tlounge notifications retry ID          # or --all
    tlounge reservation show ID             # workflow state and history summary
    tlounge reservation cancel ID --reason "double booked by phone"
    tlounge availability rebuild            # drop every cached availability answer
    tlounge demo                            # demo data, if the database is empty

Exit codes: 0 done (a reservation cancelled already counts); 2 bad input, or
refused as the API refuses it with a 409 (a cancel of a reservation that ended
otherwise, a retry of a notification that did not fail); 4 a dependency cannot
be reached; 5 not found.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator

import valkey.asyncio as valkey
from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.cache import invalidate_availability
from api.cli import command
from api.datafolder import NoStackData, running_stack, with_running_stack
from api.db import create_pool
from api.errors import TLoungeError, describe_validation
from api.models.reservations import CancelBody
from api.objectstore import create_object_store
from api.ops import _database, command_dsn
from api.resources import API_QUERY_TIMEOUT, Resources, connect_temporal, valkey_url
from api.services import reservations
from api.settings import Settings
from api.tokens import Principal
from proto import reservation_pb2 as pb
from workflows.reservation import (
    RETRY_NOTIFICATION,
    ReservationWorkflow,
    notification_name,
)

EXIT_BAD_INPUT, EXIT_UNREACHABLE, EXIT_NOT_FOUND = 2, 4, 5
# ops act with an owner's reach, under a name that the history shows
_OPERATOR = Principal("admin", uuid.UUID(int=0), "owner", 0, "ops-cli")
_ENDED = ("completed", "cancelled", "expired", "no_show")


def _say(line: str) -> None:
    print(line)  # noqa: T201 - a CLI's answer


def _refuse(code: int, message: str) -> int:
    print(f"tlounge: {message}", file=sys.stderr)  # noqa: T201
    return code


def _unreachable(settings: Settings, what: str, error: BaseException) -> int:
    """Exit 4, saying so when no stack runs here: the likely reason."""
    folder = settings.data_dir.resolve()
    hint = "" if running_stack(folder) else f" (no stack runs on {folder})"
    return _refuse(EXIT_UNREACHABLE, f"{what} is unreachable: {error}{hint}")


def _beside_a_stack(settings: Settings, *, database: bool = False) -> Settings:
    """The settings pointed at the stack on their folder; refused when none
    runs there and no Temporal is named, since the default port may be
    another stack's, whose reservations this would read or change."""
    folder = settings.data_dir.resolve()
    named = settings.temporal_address or "temporal_port" in settings.model_fields_set
    if not named and running_stack(folder) is None:
        # all that the command needs, so the advice is whole
        wanted = (
            " and TLOUNGE_DATABASE_URL"
            if database and not settings.database_url
            else ""
        )
        raise NoStackData(
            f"no stack runs on {folder}; start one there, or set"
            f" TLOUNGE_TEMPORAL_ADDRESS{wanted}"
        )
    return with_running_stack(settings)


@contextlib.asynccontextmanager
async def _temporal(settings: Settings) -> AsyncIterator[Client]:
    yield await connect_temporal(settings)


@contextlib.asynccontextmanager
async def _resources(settings: Settings) -> AsyncIterator[Resources]:
    """What the services need, for the length of one command."""
    async with command_dsn(settings, create=False) as dsn:
        # a server stopped dead is told as the API tells it, not waited on
        pool = await create_pool(
            dsn, min_size=1, max_size=2,
            command_timeout=API_QUERY_TIMEOUT, connect_timeout=API_QUERY_TIMEOUT,
        )  # fmt: skip
        cache = valkey.from_url(
            valkey_url(settings),
            socket_timeout=API_QUERY_TIMEOUT,
            socket_connect_timeout=API_QUERY_TIMEOUT,
        )
        try:
            async with _temporal(settings) as client:
                yield Resources(
                    settings, pool, cache, client, create_object_store(settings)
                )
        finally:
            await cache.aclose()
            await pool.close()


_EXIT_CODES = """exit codes:
  0  done (a reservation cancelled already counts)
  2  bad input, or refused as the API refuses it with a 409
  4  a dependency cannot be reached
  5  not found"""


def _notifications_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=("failed", "retry"),
        help="failed: list them; retry: have their workflows send the mail again",
    )
    parser.add_argument(
        "reservation_id",
        nargs="?",
        type=uuid.UUID,
        help="with retry: the one reservation whose mail to send again",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="with retry, instead of an id: every reservation whose mail failed",
    )


@command("notifications", _notifications_args, epilog=_EXIT_CODES)
async def notifications(settings: Settings, args: argparse.Namespace) -> int:
    """List reservations whose notification failed, or retry them.

    Fix the cause first (the SMTP server, the client's address): a retry sends
    the failed mail once more, and the mails that waited behind it."""
    if args.reservation_id and (args.all or args.action == "failed"):
        # an id that would be ignored is a mistake the operator should hear of
        what = "--all" if args.all else "failed"
        return _refuse(EXIT_BAD_INPUT, f"{what} takes no reservation id")
    if args.action == "retry" and not (args.reservation_id or args.all):
        # whatever failed: retrying all of it is asked for by name
        return _refuse(EXIT_BAD_INPUT, "name a reservation id or --all")
    if args.action == "failed" and args.all:
        return _refuse(EXIT_BAD_INPUT, "--all goes with retry")
    settings = _beside_a_stack(settings)
    try:
        async with _temporal(settings) as client:
            if args.action == "retry" and args.reservation_id:
                ids = [str(args.reservation_id)]
            else:
                ids = [
                    execution.id.removeprefix("reservation-")
                    async for execution in client.list_workflows(
                        'WorkflowType = "ReservationWorkflow"'
                        ' AND NotificationStatus = "failed"'
                        ' AND ExecutionStatus = "Running"'
                    )
                ]
            if args.action == "failed":
                for reservation_id in ids:
                    _say(reservation_id)
                _say(f"{len(ids)} reservation(s) with a failed notification")
                return 0
            if not ids:
                _say("no reservation has a failed notification; nothing to retry")
            for reservation_id in ids:
                handle = client.get_workflow_handle(f"reservation-{reservation_id}")
                if not args.all:
                    state = await handle.query(ReservationWorkflow.state)
                    if state.notification_status != pb.NOTIFICATION_STATUS_FAILED:
                        name = notification_name(state.notification_status)
                        return _refuse(
                            EXIT_BAD_INPUT,
                            f"{reservation_id}: notification_status {name};"
                            " only a failed notification is retried",
                        )
                try:
                    await handle.signal(
                        RETRY_NOTIFICATION,
                        pb.RetryNotificationRequest(requested_by="ops-cli"),
                    )
                except RPCError as error:
                    # found by its query or listed as running, and ended since
                    if error.status != RPCStatusCode.NOT_FOUND:
                        raise
                    if args.all:
                        _say(f"{reservation_id}: {reservations.WORKFLOW_ENDED}")
                        continue
                    return _refuse(
                        EXIT_BAD_INPUT,
                        f"{reservation_id}: {reservations.WORKFLOW_ENDED}",
                    )
                _say(f"retry requested for {reservation_id}")
            return 0
    except RuntimeError as error:
        return _unreachable(settings, "Temporal", error)
    except RPCError as error:
        code = (
            EXIT_NOT_FOUND
            if error.status == RPCStatusCode.NOT_FOUND
            else (EXIT_UNREACHABLE)
        )
        return _refuse(code, f"Temporal refused: {error.message}")


_OPS_REASON = "cancelled by operations"


def _reservation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=("show", "cancel"),
        help="show: its answer as the API gives it, its workflow's state and"
        " history; cancel: release its seat and mail the client",
    )
    parser.add_argument("reservation_id", type=uuid.UUID, help="the reservation's id")
    parser.add_argument(
        "--reason",
        help=f"with cancel: told to the client (at most 200 characters;"
        f" {_OPS_REASON!r} when left out or empty)",
    )


async def _behind(
    resources: Resources, handle: WorkflowHandle, reservation_id: uuid.UUID
) -> str | None:
    """The workflow's own view, where a reset has left it behind its row: the
    API answers from the row then, so only this shows what the run knows."""
    record = await resources.pool.fetchrow(
        "SELECT status, seat_id, starts_at, ends_at, version"
        " FROM reservation.reservations WHERE id = $1",
        reservation_id,
    )
    state = reservations.view_from_state(await handle.query(ReservationWorkflow.state))
    if record is None or (
        record["status"], record["seat_id"], record["starts_at"], record["ends_at"],
        record["version"],
    ) == (
        state.status, state.seat_id, state.starts_at, state.ends_at, state.version
    ):  # fmt: skip
        return None
    return (
        f"{'workflow state':20} {state.status} seat {state.seat_id}"
        f" from {state.starts_at.isoformat()} to {state.ends_at.isoformat()}"
        f" version {state.version} (behind its record, as after a reset; told to"
        " look at its record, it takes it over)"
    )


@command("reservation", _reservation_args, epilog=_EXIT_CODES)
async def reservation(settings: Settings, args: argparse.Namespace) -> int:
    """Show a reservation with its workflow state and history, or cancel it."""
    if args.action == "show" and args.reason is not None:
        # a reason that would be ignored is a mistake the operator should hear of
        return _refuse(EXIT_BAD_INPUT, "--reason goes with cancel")
    # an empty one, as `--reason=` gives, would leave the client no reason at all
    reason = args.reason.strip() if args.reason else ""
    reason = reason or _OPS_REASON
    if args.action == "cancel":
        try:
            # what the API lets through, since it reaches the client's mail too
            CancelBody(reason=reason)
        except ValidationError as error:
            return _refuse(EXIT_BAD_INPUT, describe_validation(error.errors()))
    settings = _beside_a_stack(settings, database=True)
    try:
        async with _resources(settings) as resources:
            if args.action == "cancel":
                before = await reservations.get(
                    resources, _OPERATOR, args.reservation_id
                )
                if before.status == "cancelled":
                    # what a retried cancel finds: done, as asked, so a script
                    # that runs it twice does not fail; the new reason is told
                    # nowhere, so it is not written
                    _say(f"{args.reservation_id} was already cancelled")
                    return 0
                if before.status in _ENDED:
                    # nothing was cancelled, and a script must be able to tell
                    return _refuse(
                        EXIT_BAD_INPUT,
                        f"{args.reservation_id}: cannot cancel"
                        f" {reservations.a_status(before.status)} reservation",
                    )
                await reservations.cancel(
                    resources, _OPERATOR, args.reservation_id, reason=reason
                )
                _say(f"cancelled {args.reservation_id}")
                return 0
            handle = resources.temporal.get_workflow_handle(
                reservations.workflow_id(args.reservation_id)
            )
            behind = None
            # before the read below, which tells a lagging run to catch up; a
            # reservation or workflow not found is for that read to say
            with contextlib.suppress(RPCError):
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    behind = await _behind(resources, handle, args.reservation_id)
            view = await reservations.get(resources, _OPERATOR, args.reservation_id)
            for key, value in view.public().items():
                _say(f"{key:20} {value}")
            if behind:
                _say(behind)
            description = await handle.describe()
            # None only for UNSPECIFIED, which the server never reports for a run
            assert description.status is not None
            _say(f"{'workflow':20} {handle.id} ({description.status.name.lower()})")
            counts: dict[str, int] = {}
            failed = ""
            async for event in handle.fetch_history_events():
                kind = event.WhichOneof("attributes") or "unknown"
                name = kind.removesuffix("_event_attributes")
                counts[name] = counts.get(name, 0) + 1
                if name == "activity_task_failed":
                    # what ops fix before a retry: the mail's refusal carries the
                    # SMTP server's own words
                    failure = event.activity_task_failed_event_attributes.failure
                    failed = failure.message or failure.cause.message
            if view.notification_status == "failed" and failed:
                # quoted: the server's words may carry control characters
                _say(f"{'last mail failure':20} {failed[:300]!r}")
            _say(f"{'history':20} {sum(counts.values())} events")
            for name, count in sorted(counts.items()):
                _say(f"  {name:30} {count}")
            return 0
    except TLoungeError as error:
        code = {404: EXIT_NOT_FOUND, 503: EXIT_UNREACHABLE}.get(
            error.status_code, EXIT_BAD_INPUT
        )
        return _refuse(code, error.description)
    except BrokenPipeError:
        # the reader (`| head`) has what it wanted; nothing is unreachable
        raise
    except valkey.ValkeyError as error:
        return _unreachable(settings, "Valkey", error)
    except TimeoutError:
        # asyncpg's, at connect or query; Temporal's and Valkey's are their own
        return _refuse(
            EXIT_UNREACHABLE,
            f"PostgreSQL is unreachable: no answer within {API_QUERY_TIMEOUT:g} s",
        )
    except (RuntimeError, OSError) as error:
        return _unreachable(settings, "a dependency", error)


def _availability_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("rebuild",))


@command("availability", _availability_args)
async def availability(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild the availability cache: every cached answer is dropped at once."""
    settings = with_running_stack(settings)
    async with _database(settings, create=False) as conn:
        ids = [
            row["id"] for row in await conn.fetch("SELECT id FROM coworking.coworkings")
        ]
    cache = valkey.from_url(valkey_url(settings))
    try:
        for coworking_id in ids:
            await invalidate_availability(cache, coworking_id)
    except (OSError, valkey.ConnectionError) as error:
        return _refuse(EXIT_UNREACHABLE, f"Valkey is unreachable: {error}")
    finally:
        await cache.aclose()
    _say(f"availability cache rebuilt for {len(ids)} coworking(s)")
    return 0


@command("demo")
async def demo(settings: Settings, args: argparse.Namespace) -> int:
    """Load the demo data (two coworkings, a client, an owner) if there is none."""
    from api.demo import load_demo

    async with _database(settings, create=False) as conn:
        async with conn.transaction():
            await conn.execute("LOCK TABLE coworking.coworkings IN EXCLUSIVE MODE")
            if await conn.fetchval("SELECT count(*) FROM coworking.coworkings"):
                _say("the database already holds coworkings; nothing loaded")
                return 0
            _say(await load_demo(conn))
    return 0
