"""The mail activity: at most once per (reservation, kind, version).

What was sent is recorded in notifications.sent_mail and checked first. When
that record fails (PostgreSQL went away), the accepted message is heartbeated
before the attempt fails, so the retry records it without sending again. The
one window nobody closes: the SMTP server accepted the message and the worker
died before recording it; the retry then sends the same Message-ID again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import aiosmtplib
import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.mail_render import (
    MailBuildError,
    MailContext,
    build_message,
    kind_name,
    message_id,
)
from activities.smtp_pool import SmtpConnections
from api.errors import DATABASE_DOWN
from api.settings import Settings
from proto import reservation_pb2 as pb
from workers import metrics

logger = logging.getLogger(__name__)


def _dt(ts: object) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]


def _refusal(
    kind: str, what: str, code: int, words: str, permanent: bool
) -> ApplicationError:
    """A server's 5xx is final; anything else may pass on a later attempt. The
    server's own words go with the code: they are what ops fix."""
    reason = "permanent" if permanent else "transient"
    metrics.MAILS_FAILED.labels(kind=kind, reason=reason).inc()
    # a reply of several lines is one line here: it is logged and shown as one
    said = f"{code} {' / '.join(words.split(chr(10)))[:200]}".rstrip()
    if permanent:
        return ApplicationError(
            f"the SMTP server refused the {what}: {said}",
            type="MailRejected",
            non_retryable=True,
        )
    return ApplicationError(
        f"the SMTP server deferred the {what}: {said}", type="MailDeferred"
    )


_INVITATIONS = (pb.MAIL_KIND_CONFIRMATION, pb.MAIL_KIND_RESCHEDULE)
_CLOSED_AS = {
    pb.MAIL_KIND_CANCELLATION: "cancelled",
    pb.MAIL_KIND_EXPIRED: "expired",
    pb.MAIL_KIND_NO_SHOW: "no_show",
}


# the first key of the advisory locks on an address's mail turns; the claims'
# locks take the one-key form, which PostgreSQL keeps apart from this one
_TURNS_LOCK = 0x6D61696C

# closes that send a mail of their own, which says what holds
_ENDED = frozenset(_CLOSED_AS.values())


# providers that deliver a local part with its dots left out to the same box
_DOTLESS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def mailbox_key(address: str) -> str:
    """The mailbox an address reaches, as far as its form tells: a `+tag`
    (RFC 5233 subaddressing) reaches the box without it, and so, at Gmail,
    does a local part with dots. Accounts registered with such variants of
    someone's address would each have had a window of their own."""
    local, at, domain = address.lower().rpartition("@")
    if not at:
        return address.lower()
    base = local.split("+", 1)[0] or local
    if domain in _DOTLESS:
        domain = _DOTLESS[domain]
        base = base.replace(".", "") or base
    return f"{base}@{domain}"


def _reminder_is_stale(request: pb.MailInput, context: MailContext) -> bool:
    """A reminder retried past a check-in, a cancel or a move: the first needs
    none, and the others would name a seat and time that may no longer hold.
    The workflow, told so, judges whether the booking still stands there."""
    due_while = "held" if request.kept_booking else "confirmed"
    return context.row_status != due_while or context.row_version != request.version


class MailActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, smtp: SmtpConnections):
        self.pool = pool
        self.settings = settings
        self.smtp = smtp
        self.domain = (
            settings.mail_from.rsplit("@", 1)[-1].rstrip(">").strip() or "tlounge.local"
        )

    @activity.defn(name="send_mail")
    async def send_mail(self, request: pb.MailInput) -> pb.MailResult:
        kind = kind_name(request.kind)
        try:
            return await self._send(request, kind)
        except DATABASE_DOWN as error:
            # not the mail's fault: the workflow waits this out however long it lasts
            metrics.MAILS_FAILED.labels(kind=kind, reason="database").inc()
            raise ApplicationError(
                f"PostgreSQL is unreachable: {type(error).__name__}",
                type="DatabaseUnavailable",
            ) from error

    async def _send(self, request: pb.MailInput, kind: str) -> pb.MailResult:
        mid = message_id(
            request.reservation_id, request.kind, request.version, self.domain
        )
        attempt_at = activity.info().current_attempt_scheduled_time
        if request.kind == pb.MAIL_KIND_REMINDER and attempt_at >= _dt(
            request.starts_at
        ):
            # held up past the start (a failed send retried late, an outage):
            # the reminder has lost its point
            logger.info("reminder %s dropped: the booking has started", mid)
            return pb.MailResult(sent=False, message_id=mid)
        if await self.pool.fetchval(
            "SELECT 1 FROM notifications.sent_mail WHERE message_id = $1", mid
        ):
            return pb.MailResult(sent=False, message_id=mid, duplicate=True)

        context = await self._context(request)
        if context is None:
            return pb.MailResult(sent=False, message_id=mid)
        if request.kind == pb.MAIL_KIND_REMINDER and _reminder_is_stale(
            request, context
        ):
            logger.info("reminder %s dropped: the booking has changed since", mid)
            return pb.MailResult(sent=False, message_id=mid, stale=True)
        if request.kind in _INVITATIONS and request.version <= context.invited_version:
            # one invitation per version: a run begun again by a reset asks for
            # the confirmation of a version whose move mail the client has
            return pb.MailResult(sent=False, message_id=mid, duplicate=True)
        if request.may_give_way and context.row_status in _ENDED:
            # retried past the booking's close, whose own mail says what holds
            logger.info("%s dropped: the booking has closed", mid)
            return pb.MailResult(sent=False, message_id=mid)
        if request.may_give_way and context.row_version > request.version:
            # the workflow sends the slot the booking moved to in its place
            raise ApplicationError(
                f"version {request.version} has moved on to {context.row_version}",
                type="MailSuperseded",
                non_retryable=True,
                # expected, and answered by the workflow: no warning, no trace
                category=ApplicationErrorCategory.BENIGN,
            )
        delivered = mid in activity.info().heartbeat_details
        # dated when this attempt began, on the server's clock: one scheduled
        # while the worker was away would take a turn that ran out too soon
        if not delivered and not await self._take_turn(
            mid, context.recipient_email, activity.info().started_time
        ):
            metrics.MAILS_FAILED.labels(kind=kind, reason="throttled").inc()
            raise ApplicationError(
                f"the recipient has had {self.settings.mail_recipient_limit} mails"
                f" in {self.settings.mail_recipient_window_minutes} minutes;"
                " this one waits its turn",
                type="MailThrottled",
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            )
        try:
            message = build_message(
                context, sender=self.settings.mail_from, domain=self.domain
            )
        except MailBuildError as error:
            metrics.MAILS_FAILED.labels(kind=kind, reason="permanent").inc()
            raise ApplicationError(
                str(error), type="MailBuildError", non_retryable=True
            ) from error

        if not delivered:
            await self._deliver(message, kind)
        try:
            await self.pool.execute(
                "INSERT INTO notifications.sent_mail (message_id, reservation_id,"
                " kind, version, recipient, due_at, scheduled_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (message_id) DO NOTHING",
                mid, uuid.UUID(request.reservation_id), kind, request.version,
                context.recipient_email, _dt(request.due_at),
                activity.info().current_attempt_scheduled_time,
            )  # fmt: skip
        except DATABASE_DOWN:
            # the failure carries it to the next attempt, which then only records;
            # only here, as a heartbeat on every mail would cost Temporal a write
            activity.heartbeat(mid)
            raise
        metrics.MAILS_SENT.labels(kind=kind).inc()
        if request.kind == pb.MAIL_KIND_REMINDER:
            metrics.observe_reminder_lateness(
                due=_dt(request.due_at), sent=datetime.now(UTC)
            )
        return pb.MailResult(sent=True, message_id=mid)

    async def _take_turn(self, mid: str, recipient: str, at: datetime) -> bool:
        """Whether this mail may go to the address now: a turn of the window's
        limit, taken at `at`, or the one it took on an attempt before. One mail
        at a time per address decides, so a backlog picked up at once takes
        only the turns there are."""
        limit = self.settings.mail_recipient_limit
        if not limit:
            return True
        key = mailbox_key(recipient)
        since = at - timedelta(minutes=self.settings.mail_recipient_window_minutes)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _TURNS_LOCK, key
            )
            await conn.execute(
                "DELETE FROM notifications.mail_turns"
                " WHERE recipient_key = $1 AND taken_at <= $2",
                key, since,
            )  # fmt: skip
            taken = await conn.fetch(
                "SELECT message_id FROM notifications.mail_turns"
                " WHERE recipient_key = $1",
                key,
            )
            if mid in {row["message_id"] for row in taken}:
                return True
            if len(taken) >= limit:
                return False
            # a turn taken at the address the client had before a change of it
            # moves here, as the mail does
            await conn.execute(
                "INSERT INTO notifications.mail_turns"
                " (message_id, recipient_key, taken_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (message_id) DO UPDATE"
                " SET recipient_key = $2, taken_at = $3",
                mid, key, at,
            )  # fmt: skip
        return True

    async def _deliver(self, message: object, kind: str) -> None:
        try:
            await self.smtp.send(message)  # type: ignore[arg-type]
        except aiosmtplib.SMTPRecipientsRefused as error:
            # refused at RCPT: a bad address is refused for good, like a 5xx reply
            codes = [refused.code for refused in error.recipients] or [0]
            words = error.recipients[0].message if error.recipients else ""
            permanent = all(500 <= code < 600 for code in codes)
            raise _refusal(kind, "recipient", codes[0], words, permanent) from error
        except aiosmtplib.SMTPResponseException as error:
            permanent = 500 <= error.code < 600
            raise _refusal(
                kind, "message", error.code, error.message, permanent
            ) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            metrics.MAILS_FAILED.labels(kind=kind, reason="transient").inc()
            raise ApplicationError(
                f"the SMTP server is unreachable: {type(error).__name__}"
                f" ({str(error)[:200]})",
                type="MailUnreachable",
            ) from error

    async def _context(self, request: pb.MailInput) -> MailContext | None:
        """The recipient as they are now: an opt-out or a deleted account wins."""
        row = await self.pool.fetchrow(
            "SELECT c.email, c.name, c.surname, c.send_notifications, c.deleted_at,"
            " r.status, r.version,"
            " w.name AS coworking_name, w.address, w.timezone, s.number,"
            # mails go out one at a time, so an invitation sent is recorded by now
            " (SELECT coalesce(max(m.version), 0) FROM notifications.sent_mail m"
            "  WHERE m.reservation_id = r.id"
            "  AND m.kind IN ('confirmation', 'reschedule')) AS invited_version"
            " FROM reservation.reservations r"
            " JOIN client.clients c ON c.id = r.client_id"
            " JOIN coworking.seats s ON s.id = $2"
            " JOIN coworking.coworkings w ON w.id = s.coworking_id"
            " WHERE r.id = $1",
            uuid.UUID(request.reservation_id), uuid.UUID(request.seat_id),
        )  # fmt: skip
        if (
            row is None
            or not row["send_notifications"]
            or row["deleted_at"] is not None
            # a run reset past the close may decide another end; the row's stands
            or row["status"] != _CLOSED_AS.get(request.kind, row["status"])
        ):
            return None
        return MailContext(
            reservation_id=request.reservation_id,
            kind=request.kind,
            version=request.version,
            recipient_email=row["email"],
            recipient_name=f"{row['name']} {row['surname']}".strip(),
            coworking_name=row["coworking_name"],
            coworking_address=row["address"],
            timezone=row["timezone"],
            seat_number=row["number"],
            starts_at=_dt(request.starts_at),
            ends_at=_dt(request.ends_at),
            cancel_reason=request.cancel_reason,
            invited_version=row["invited_version"],
            move_lapsed=request.move_lapsed,
            row_version=row["version"],
            row_status=row["status"],
        )
