"""One durable workflow per reservation: hold, confirm, remind, check in, close.

Deterministic code only: time from `workflow.now()`, waits on durable timers,
every side effect in an activity. Activities are named by string so that this
module never imports the database or SMTP clients into the sandbox.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, TypeVar, cast

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from google.protobuf import json_format
    from google.protobuf.message import Message

    from proto import reservation_pb2 as pb
    from proto.converter import Unreadable
    from workflows.local_time import local_iso, local_span, local_time

WORKFLOW_NAME = "ReservationWorkflow"

CLIENT_ID = SearchAttributeKey.for_keyword("ClientId")
COWORKING_ID = SearchAttributeKey.for_keyword("CoworkingId")
SEAT_ID = SearchAttributeKey.for_keyword("SeatId")
RESERVATION_START = SearchAttributeKey.for_datetime("ReservationStart")
RESERVATION_STATUS = SearchAttributeKey.for_keyword("ReservationStatus")
NOTIFICATION_STATUS = SearchAttributeKey.for_keyword("NotificationStatus")

# the claim's refusal of a move asked by a run that a reset left behind its row
STALE_RULE = "workflow_behind"
# Signals senders name by these: their handlers take any number of inputs (see
# below), which a typed handle cannot express.
CANCEL = "cancel"
LOOK_AT_ROW = "look_at_row"
RETRY_NOTIFICATION = "retry_notification"

# Patch ids: each marks a change of workflow logic that old histories must not see.
# One id per release, checked once at the start: every patch also writes the
# TemporalChangeVersion search attribute, a visibility update of its own.
# 2026-12: search attributes written only on change; a hold moved before staff
# confirm it is announced by a confirmation mail.
PATCH_2026_12 = "2026-12-lean-attributes"
# 2026-12: a mail that failed only because PostgreSQL was down is tried again,
# not marked failed for ops to retry.
PATCH_MAIL_WAITS_FOR_DATABASE = "2026-12-mail-waits-for-database"
# 2026-12: the move of a confirmed reservation queues its mail inside the update,
# so that the update's answer says "pending" as a query right after it does.
PATCH_MOVE_MAIL_IN_UPDATE = "2026-12-move-mail-in-update"
# 2026-12: so does the confirmation of a held reservation by staff.
PATCH_CONFIRM_MAIL_IN_UPDATE = "2026-12-confirm-mail-in-update"
# 2026-12: a deadline that fires while staff's confirm or check-in is being
# written waits for it and then looks again, instead of expiring or marking a
# no-show the reservation that staff were just told is confirmed or checked in.
PATCH_DEADLINE_LOOKS_AGAIN = "2026-12-deadline-looks-again"
# 2026-12: a cancel that arrives once the end has passed, before its timer has
# woken the timeline, is ignored: the reservation completes, not cancelled.
PATCH_NO_CANCEL_AFTER_END = "2026-12-no-cancel-after-end"
# 2026-12: a client's move of a reservation that staff confirmed, in a
# coworking where staff confirm, is held again until they confirm the new one.
PATCH_CLIENT_MOVE_WAITS_FOR_STAFF = "2026-12-client-move-waits-for-staff"
# 2026-12: a mail queued behind a failed one leaves the notification failed, so
# ops still find it and retry; it read "pending" and dropped out of their views.
PATCH_FAILED_STAYS_FAILED = "2026-12-failed-stays-failed"
# 2026-12: a client checked in before the reminder's instant (a lead shorter
# than the check-in window) is not reminded of a seat they sit at.
PATCH_NO_REMINDER_AFTER_CHECK_IN = "2026-12-no-reminder-after-check-in"
# 2026-12: a mail coming due behind a failed one tries the failed one again
# first, as an ops retry would: a server back up by the reminder's instant
# delivers both, where it had waited for ops and lost the reminder.
PATCH_NEXT_MAIL_RETRIES = "2026-12-next-mail-retries"
# 2026-12: a mail that came due while the one ahead of it was still in its
# round of attempts gets a round too, after a pause, once that round fails;
# it had waited for ops, as nothing queued after the failure woke the retry.
PATCH_RETRY_MAILS_BEHIND = "2026-12-retry-mails-behind"
# 2026-12: a newer confirmation or move mail takes the place of one not yet
# delivered, which keeps its kind and place in the queue: after a failed round
# the client had received the old slot's confirmation and, the same second,
# the move to the new one.
PATCH_ONE_INVITATION = "2026-12-one-invitation"
# A run begun again by a reset to before a move holds the booking as the
# database has it: the seat, times and version the move left, or the end a
# cancel or a check-in past its end left. Before, its timers acted on the
# first seat and time, while another client could hold them.
PATCH_RESET_TAKES_ROW = "2026-12-reset-takes-row"
# A run reset to a point in between, and so behind its row, takes the row over
# when a timer's close or a move finds it ahead, then goes on from there. Before,
# it no-showed or expired a booking confirmed, checked in or moved since, and
# refused every move until support reset it to its first task.
PATCH_RUN_CATCHES_UP = "2026-12-run-catches-up"
# 2026-12: a move a run behind its row takes up again only if it was asked of
# the row's version: a reset reapplies old moves, asked of versions long gone.
PATCH_MOVE_NAMES_ITS_VERSION = "2026-12-move-names-its-version"
# 2026-12: so a move asked of an older version than the run's is refused: once
# the run has caught up, the old moves a reset reapplies come after it.
PATCH_OLD_MOVES_REFUSED = "2026-12-old-moves-refused"
# 2026-12: a `look_at_row` signal (the API sends one when it finds the row ahead)
# makes the run read its row and take it over at once, rather than at its own
# next deadline, which may come after the row's.
PATCH_LOOKS_AT_ROW = "2026-12-looks-at-row"
# 2026-12: a run taking its row over takes the rules the row was claimed on
# (a move made under a coworking's later grace or hold), not only its slot
PATCH_TAKES_ROW_RULES = "2026-12-takes-row-rules"
# 2026-12: staff's confirm and check-in of a run behind its row write only while
# the row is as the run knows it; else the run takes the row over and staff are
# asked to look again.
PATCH_ACTS_READ_THE_ROW = "2026-12-acts-read-the-row"
# 2026-12: a cancel of a run behind a move mails the slot the row held.
PATCH_CANCEL_MAILS_THE_ROW = "2026-12-cancel-mails-the-row"
# 2026-12: a run taking over a held row keeps the hold's end the row was held
# with, not a full hold from the take-over.
PATCH_ROW_KEEPS_HOLD_END = "2026-12-row-keeps-hold-end"
# 2026-12: `retry_notification` and `look_at_row` mean what their names say,
# whatever input was typed in the UI; one that did not decode was dropped.
PATCH_SIGNAL_TAKES_ANY_INPUT = "2026-12-signal-takes-any-input"
# 2026-12: a `cancel` whose input is a JSON string takes it as the reason, and
# one whose JSON escapes a lone surrogate has it as a space; both were dropped,
# while the CLI said the signal was sent.
PATCH_CANCEL_TAKES_TEXT = "2026-12-cancel-takes-text"
# 2026-12: a client's move of a booking staff had confirmed keeps that seat and
# time claimed until staff confirm the move, and goes back to it when they do
# not; the booking expired with the move before.
PATCH_MOVE_KEEPS_BOOKING = "2026-12-move-keeps-booking"
# 2026-12: a booking closed while a client's move waited for staff closes, in its
# row, query and search attributes, on the slot staff confirmed; it kept the
# move's.
PATCH_CLOSES_ON_FALLBACK = "2026-12-closes-on-fallback"
# 2026-12: a confirmation or move mail whose booking has moved on since gives
# way to the move's own mail: it goes out once, with the new slot and version,
# keeping its kind. A server back in the middle of a round of attempts
# delivered the old slot's confirmation, then the move.
PATCH_MAIL_GIVES_WAY = "2026-12-mail-gives-way"
# 2026-12: a move waiting for staff that ends back on the very seat and times
# staff confirmed sends no mail: the client was never told of the move, and
# heard "your booking has moved" to where it already was.
PATCH_BACK_HOME_UNANNOUNCED = "2026-12-back-home-unannounced"
# 2026-12: while a client's move waits for staff, the booking staff confirmed
# still gets its reminder at its own instant; it had none while the move
# waited, and none at all when the move lapsed at that booking's start.
PATCH_KEPT_BOOKING_REMINDED = "2026-12-kept-booking-reminded"
# 2026-12: a reminder still in its round of attempts when the client moved was
# dropped by the mail worker as naming a slot that no longer held, yet counted
# as sent: the booking a move waiting for staff keeps, or went back to, had none.
PATCH_STALE_REMINDER_OWED = "2026-12-stale-reminder-owed"
# 2026-12: a mail whose recipient has had the window's limit of mails waits its
# turn and is tried again; it had no limit.
PATCH_MAIL_WAITS_ITS_TURN = "2026-12-mail-waits-its-turn"
# 2026-12: staff checking a client in at the booking they confirmed, while a
# move of it waits for them, take the move back; the check-in was refused as
# of a held reservation, until the move lapsed at that booking's start.
PATCH_CHECK_IN_TAKES_BACK_MOVE = "2026-12-check-in-takes-back-move"
# 2026-12: a signal with an input the converter cannot read (the UI offers
# json/protobuf, which needs a message type) reaches its handler, which ignores
# the input as it ignores any other it cannot use; the SDK dropped such a signal.
PATCH_UNREADABLE_SIGNAL_TAKEN = "2026-12-unreadable-signal-taken"
# A workflow whose input names a revision takes the patches that revision folds
# in without asking: `workflow.patched` records a marker and upserts
# TemporalChangeVersion on every new booking, one history event and one
# visibility write each. Inputs from older starters carry revision 0 and ask.
# A patch added after revision 3 is asked for until a later revision folds it in.
REVISION = 4
_FOLDED_IN: dict[str, int] = {
    PATCH_2026_12: 2,
    PATCH_MAIL_WAITS_FOR_DATABASE: 2,
    PATCH_MOVE_MAIL_IN_UPDATE: 2,
    PATCH_CONFIRM_MAIL_IN_UPDATE: 2,
    PATCH_DEADLINE_LOOKS_AGAIN: 2,
    PATCH_NO_CANCEL_AFTER_END: 2,
    # 3: the catch-up is asked at every timed close, so every reservation's end
    PATCH_CLIENT_MOVE_WAITS_FOR_STAFF: 3,
    PATCH_FAILED_STAYS_FAILED: 3,
    PATCH_NO_REMINDER_AFTER_CHECK_IN: 3,
    PATCH_NEXT_MAIL_RETRIES: 3,
    PATCH_RETRY_MAILS_BEHIND: 3,
    PATCH_ONE_INVITATION: 3,
    PATCH_RESET_TAKES_ROW: 3,
    PATCH_RUN_CATCHES_UP: 3,
    # asked at every check-in; folded in after revision 3 began, which is safe
    # only as it changes no command: it adds to an activity's input, and reads a
    # result field that the activity sets only for an input with it
    PATCH_ACTS_READ_THE_ROW: 3,
    # 4: the mail's patch is asked at every invitation; the others at moves,
    # signals and closes
    PATCH_MOVE_NAMES_ITS_VERSION: 4,
    PATCH_OLD_MOVES_REFUSED: 4,
    PATCH_LOOKS_AT_ROW: 4,
    PATCH_TAKES_ROW_RULES: 4,
    PATCH_CANCEL_MAILS_THE_ROW: 4,
    PATCH_ROW_KEEPS_HOLD_END: 4,
    PATCH_SIGNAL_TAKES_ANY_INPUT: 4,
    PATCH_CANCEL_TAKES_TEXT: 4,
    PATCH_MOVE_KEEPS_BOOKING: 4,
    PATCH_CLOSES_ON_FALLBACK: 4,
    PATCH_MAIL_GIVES_WAY: 4,
}
# how long a mail rests, after its attempts ran into a database outage, before
# the next round of attempts
DATABASE_OUTAGE_PAUSE = timedelta(seconds=30)
# how long a mail rests when its recipient has had the window's limit of mails
MAIL_TURN_PAUSE = timedelta(minutes=1)
# how long mails that waited behind a failed round rest before they try again,
# at most: long enough for a server down all round to come back; half the time
# left before the start where that is shorter
MAILS_BEHIND_PAUSE = timedelta(minutes=10)

# Every move, taken or refused, adds to the history, which a worker replays
# whole when the workflow comes back to its cache; past this many events a
# reservation takes no more moves. Normal lives stay under a hundred.
MOVE_HISTORY_BUDGET = 2_000

# Staff may check a client in from this long before the start until the end.
CHECKIN_OPENS_BEFORE = timedelta(minutes=30)
# A closed reservation keeps waiting this long for an ops retry of a failed mail.
FAILED_MAIL_PATIENCE = timedelta(days=7)


class _ActivityOptions(TypedDict):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy


DB_ACTIVITY: _ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        maximum_interval=timedelta(seconds=10),
    ),
}
MAIL_ATTEMPT_TIMEOUT = timedelta(seconds=15)
MAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=["MailRejected", "MailBuildError"],
)

S = pb.ReservationStatus
TERMINAL = (
    S.RESERVATION_STATUS_COMPLETED,
    S.RESERVATION_STATUS_CANCELLED,
    S.RESERVATION_STATUS_EXPIRED,
    S.RESERVATION_STATUS_NO_SHOW,
    S.RESERVATION_STATUS_REJECTED,
)

# what the API takes as a cancel's reason, also of one signalled from the UI
REASON_MAX = 200

# Mails that carry the calendar event: only the newest is worth sending.
_INVITATIONS = (pb.MAIL_KIND_CONFIRMATION, pb.MAIL_KIND_RESCHEDULE)
# Mails that say nothing useful once the reservation they announce has moved on.
_STALE_WHEN_CLOSED = (
    pb.MAIL_KIND_REMINDER,
    pb.MAIL_KIND_CONFIRMATION,
    pb.MAIL_KIND_RESCHEDULE,
)


def _take_slot(mail: pb.MailInput, newer: pb.MailInput) -> None:
    """The newer mail's reservation in the older one, which keeps its kind:
    a client never told of the booking is told of it, at its new slot."""
    mail.version = newer.version
    mail.seat_id = newer.seat_id
    mail.starts_at.CopyFrom(newer.starts_at)
    mail.ends_at.CopyFrom(newer.ends_at)
    mail.move_lapsed = newer.move_lapsed


def status_name(status: int) -> str:
    return S.Name(status).removeprefix("RESERVATION_STATUS_").lower()


def version_moved_on(now: int, seen: int) -> str:
    """A change refused as asked of a version the reservation has left, in the
    words of the workflow and of the API, which refuses it first when it can."""
    return (
        f"version: the reservation is at version {now} now, not {seen};"
        " look at it again"
    )


def a_status(status: str) -> str:
    """The status name after its article, as a sentence reads it: "an expired",
    "a no-show"."""
    words = status.replace("_", "-")
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"


def notification_name(status: int) -> str:
    name = pb.NotificationStatus.Name(status)
    return name.removeprefix("NOTIFICATION_STATUS_").lower()


def _names(mail: pb.MailInput, slot: pb.Slot | pb.ReservationState) -> bool:
    return (mail.seat_id, mail.starts_at, mail.ends_at) == (
        slot.seat_id, slot.starts_at, slot.ends_at,
    )  # fmt: skip


def _failed_as(error: ActivityError, kind: str) -> bool:
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.type == kind


def _dt(ts: object) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]


def _set(ts: object, value: datetime) -> None:
    ts.FromDatetime(value)  # type: ignore[attr-defined]


@workflow.defn(name=WORKFLOW_NAME)
class ReservationWorkflow:
    @workflow.init
    def __init__(self, input: pb.ReservationInput) -> None:
        self._input = input
        self._state = pb.ReservationState(
            reservation_id=input.reservation_id,
            client_id=input.client_id,
            seat_id=input.seat_id,
            status=S.RESERVATION_STATUS_UNSPECIFIED,
            version=1,
            notification_status=pb.NOTIFICATION_STATUS_NONE,
            request_hash=input.request_hash,
        )
        self._state.starts_at.CopyFrom(input.starts_at)
        self._state.ends_at.CopyFrom(input.ends_at)
        self._hold: pb.HoldResult | None = None
        self._hold_deadline: datetime | None = None
        # the instant of the last timer that fired: the server's clock has
        # passed it, whatever clock a later task carries (a worker that hung
        # across a deadline once computed with one from before its timer)
        self._clock_floor = datetime.min.replace(tzinfo=UTC)
        self._cancel: pb.CancelRequest | None = None
        self._changed = False
        self._mails: list[pb.MailInput] = []
        self._sending: pb.MailInput | None = None
        self._retry_requested = False
        self._look_at_row = False
        # a mail was queued behind one whose round has not ended yet
        self._queued_behind = False
        self._reminded_version = 0
        # the booking a pending move keeps has had its reminder
        self._kept_reminded = False
        # the version of the last reminder queued, and one the mail worker
        # dropped as the booking had changed since, until the run has caught up
        self._last_reminder_version = 0
        self._stale_reminder: pb.MailInput | None = None
        self._confirmation_version = 0
        # updates run beside the main loop; one change of the reservation at a time
        self._lock = asyncio.Lock()
        self._lean = False
        self._announced_status = input.announced_status or "holding"
        self._announced_notification = input.announced_notification or "none"
        self._sent_any = False
        # the summary is fixed at the start; a move is told in the current details
        self._moved_to = ""
        # the version a lapsed move went back to, whose mail says so
        self._lapsed_version = 0
        # the current details are the timeline's wait, then what holds a mail up
        self._details = ""
        self._mail_held = ""

    @workflow.run
    async def run(self, input: pb.ReservationInput) -> pb.ReservationState:
        self._lean = self._patched(PATCH_2026_12)
        # The hold, inside the first workflow task so the booking answers at once.
        claim = await workflow.execute_local_activity(
            "claim_seat",
            self._claim_input(
                seat_id=input.seat_id,
                starts_at=_dt(input.starts_at),
                ends_at=_dt(input.ends_at),
                version=1,
                reschedule=False,
            ),
            result_type=pb.ClaimResult,
            summary="hold the seat",
            **DB_ACTIVITY,
        )
        if claim.outcome != pb.HOLD_OUTCOME_HELD:
            self._state.status = S.RESERVATION_STATUS_REJECTED
            self._hold = pb.HoldResult(
                outcome=claim.outcome,
                conflict=claim.conflict,
                rule=claim.rule,
                description=claim.description,
            )
            self._state.hold.CopyFrom(self._hold)
            self._upsert_status()
            # the summary, written at the start, reads as a booking; this says not
            taken = claim.outcome == pb.HOLD_OUTCOME_CONFLICT
            refused = "the slot is taken" if taken else claim.rule or "a booking rule"
            self._show(f"Refused ({refused}); no seat was held")
            return self._state

        self._state.coworking_id = claim.coworking_id
        self._state.rules.CopyFrom(claim.rules)
        self._state.status = claim.status
        if claim.HasField("fallback"):
            # a run begun again by a reset finds a client's move waiting for staff
            self._state.fallback.CopyFrom(claim.fallback)
        self._hold = pb.HoldResult(outcome=pb.HOLD_OUTCOME_HELD)
        if (
            claim.version > self._state.version or claim.status in TERMINAL
        ) and self._patched(PATCH_RESET_TAKES_ROW):
            if self._take_over(claim):
                return self._state
        self._hold_deadline = self._hold_end(claim)
        if not self._lean:
            workflow.upsert_search_attributes(
                [COWORKING_ID.value_set(claim.coworking_id)]
            )
        self._upsert_status()
        mailer = asyncio.create_task(self._deliver_mails())

        await self._timeline()
        # what the timeline waited for is over; support staff see how it ended
        self._show(f"Closed: {status_name(self._state.status)}")

        # Closed: drop mails that lost their point, then let the rest go out.
        self._mails = [
            mail for mail in self._mails if mail.kind not in _STALE_WHEN_CLOSED
        ]
        given_up = (workflow.now() + FAILED_MAIL_PATIENCE).astimezone(UTC)
        try:
            await workflow.wait_condition(
                lambda: not self._mails,
                timeout=FAILED_MAIL_PATIENCE,
                timeout_summary="give up on undelivered mail"
                f" {given_up:%Y-%m-%d %H:%M} UTC",
            )
        except TimeoutError:
            workflow.logger.warning(
                "giving up on %d undelivered mail(s)", len(self._mails)
            )
        mailer.cancel()
        # an update that arrived at the end finishes before the workflow closes
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._state.waiting_for = ""
        return self._state

    async def _timeline(self) -> None:
        """The life of the reservation, one step per turn, until it closes."""
        while True:
            # in a healthy history the floor is never ahead, so replays agree
            now = max(workflow.now(), self._clock_floor)
            status = self._state.status
            # a run that took over a row closed ahead of it; a run reset before
            # 2026-12-reset-takes-row went on with such a row's status
            if status in TERMINAL and self._patched(PATCH_RUN_CATCHES_UP):
                return
            if self._look_at_row and self._patched(PATCH_LOOKS_AT_ROW):
                self._look_at_row = False
                if await self._read_row():
                    return
                continue
            starts_at, ends_at = _dt(self._state.starts_at), _dt(self._state.ends_at)
            rules = self._state.rules
            self._owe_dropped_reminder()

            if self._cancel is not None:
                await self._close(
                    S.RESERVATION_STATUS_CANCELLED, pb.MAIL_KIND_CANCELLATION,
                    reason=self._cancel.reason,
                )  # fmt: skip
                return

            # unconfirmed: staff have until the hold runs out
            if status == S.RESERVATION_STATUS_HELD:
                assert self._hold_deadline is not None
                if self._state.HasField("fallback") and now >= self._expires_at():
                    if await self._revert_move():
                        return
                    continue
                if now >= self._hold_deadline or now >= starts_at:
                    if await self._close(
                        S.RESERVATION_STATUS_EXPIRED, pb.MAIL_KIND_EXPIRED,
                        decided_on=status,
                    ):  # fmt: skip
                        return
                    continue
                # unconfirmed at the start, it expires then, whatever the hold
                expires_at = self._expires_at()
                what = "confirmation by staff before"
                if self._state.HasField("fallback"):
                    what = "staff to confirm the move (else it goes back) before"
                    kept = self._state.fallback
                    kept_reminder_at = _dt(kept.starts_at) - timedelta(
                        minutes=rules.reminder_lead_minutes
                    )
                    if (
                        not self._kept_reminded
                        and kept_reminder_at < expires_at
                        and self._patched(PATCH_KEPT_BOOKING_REMINDED)
                    ):
                        if now >= kept_reminder_at:
                            self._kept_reminded = True
                            self._queue_mail(
                                pb.MAIL_KIND_REMINDER,
                                due_at=kept_reminder_at,
                                slot=kept,
                                kept_booking=True,
                            )
                            continue
                        await self._sleep_until(
                            kept_reminder_at,
                            "the reminder of the booking staff confirmed at",
                            kept_reminder_at,
                        )
                        continue
                await self._sleep_until(expires_at, what, expires_at)
                continue

            version = self._state.version
            if self._confirmation_version < version:
                self._announce_version()

            # the reminder: an absolute instant, at once if it has already passed
            reminder_at = starts_at - timedelta(minutes=rules.reminder_lead_minutes)
            if self._reminded_version < version and now < starts_at:
                if status == S.RESERVATION_STATUS_CHECKED_IN and self._patched(
                    PATCH_NO_REMINDER_AFTER_CHECK_IN
                ):
                    self._reminded_version = version
                    continue
                if now >= reminder_at:
                    self._reminded_version = version
                    self._queue_mail(pb.MAIL_KIND_REMINDER, due_at=reminder_at)
                    continue
                # a lead of 0 sends nothing, yet old histories hold this timer
                what = "the start at" if reminder_at == starts_at else "the reminder at"
                await self._sleep_until(reminder_at, what, reminder_at)
                continue

            # nobody at the door by start plus grace frees the rest of the slot
            grace = rules.checkin_grace_minutes
            if grace > 0 and status == S.RESERVATION_STATUS_CONFIRMED:
                checkin_deadline = starts_at + timedelta(minutes=grace)
                if now >= checkin_deadline:
                    if await self._close(
                        S.RESERVATION_STATUS_NO_SHOW, pb.MAIL_KIND_NO_SHOW,
                        release_from=now, decided_on=status,
                    ):  # fmt: skip
                        return
                    continue
                await self._sleep_until(
                    checkin_deadline, "check-in by", checkin_deadline
                )
                continue

            if now >= ends_at:
                if self._lock.locked() and self._patched(PATCH_DEADLINE_LOOKS_AGAIN):
                    # a check-in still being written at the end is written first
                    async with self._lock:
                        done = await self._record(
                            S.RESERVATION_STATUS_COMPLETED,
                            guarded_by=PATCH_RUN_CATCHES_UP,
                        )
                else:
                    done = await self._record(
                        S.RESERVATION_STATUS_COMPLETED, guarded_by=PATCH_RUN_CATCHES_UP
                    )
                if done:
                    return
                continue
            await self._sleep_until(ends_at, "the end at", ends_at)

    def _expires_at(self) -> datetime:
        """When a held reservation stops waiting for staff: its hold's end, or
        its start, or the start of the slot it would go back to."""
        assert self._hold_deadline is not None
        expires_at = min(self._hold_deadline, _dt(self._state.starts_at))
        if self._state.HasField("fallback"):
            # the client may still come at the time staff had confirmed
            expires_at = min(expires_at, _dt(self._state.fallback.starts_at))
        return expires_at

    async def _revert_move(self) -> bool:
        """Back to the seat and time staff confirmed, as a move they left
        unanswered lapses; True when the row turns out closed."""
        async with self._lock:
            return await self._revert_move_locked()

    async def _revert_move_locked(self) -> bool:
        # a confirm waited for here answered the move
        if self._state.status != S.RESERVATION_STATUS_HELD or not (
            self._state.HasField("fallback")
        ):
            return False
        version = self._state.version
        row = await workflow.execute_activity(
            "revert_move",
            pb.ReleaseInput(
                reservation_id=self._state.reservation_id,
                status=S.RESERVATION_STATUS_CONFIRMED,
                version=version,
                decided_on=S.RESERVATION_STATUS_HELD,
            ),
            result_type=pb.ReservationRow,
            summary="go back to the seat and time staff confirmed",
            **DB_ACTIVITY,
        )
        if not row.version:
            # the row is gone: nothing to go back to, so the hold expires
            self._state.ClearField("fallback")
            return False
        lapsed = row.version == version + 1 and (
            row.status == S.RESERVATION_STATUS_CONFIRMED
        )
        closed = self._catch_up(row)
        if self._state.version == version:
            # a row behind this run (restored from a backup) cannot go
            # back; asking again would ask for ever
            self._state.ClearField("fallback")
        if lapsed:
            self._lapsed_version = row.version
            self._moved_to = (
                f"{self._slot_words()}, version {row.version}, back where staff"
                " confirmed it"
            )
            if self._kept_reminded:
                # its reminder went out while the move waited
                self._reminded_version = row.version
        return closed

    def _show(self, details: str = "", *, mail_held: str | None = None) -> None:
        """Support staff read, beside what the timeline waits for, why a mail is
        late: the pauses of the mail loop are timers of its own."""
        self._details = details or self._details
        if mail_held is not None:
            self._mail_held = mail_held
        mail = f". Mail: the {self._mail_held}" if self._mail_held else ""
        workflow.set_current_details(f"{self._details}{mail}")

    async def _hold_mail(
        self, pause: timedelta, kind: str, why: str, summary: str
    ) -> None:
        again = (workflow.now() + pause).astimezone(UTC)
        self._show(mail_held=f"{kind} mail waits for {why}; tried again"
                   f" {again:%Y-%m-%d %H:%M:%S} UTC")  # fmt: skip
        await workflow.sleep(pause, summary=summary)
        self._show(mail_held="")

    def _owe_dropped_reminder(self) -> None:
        """A reminder dropped as the booking had changed since it was queued is
        owed again where the booking stands on the slot it named: the one a
        move waiting for staff keeps, or went back to."""
        dropped = self._stale_reminder
        state = self._state
        # the row moved before the run heard of it: judge once the run has
        if dropped is None or state.version <= dropped.version:
            return
        self._stale_reminder = None
        if self._last_reminder_version != dropped.version:
            return
        if state.status == S.RESERVATION_STATUS_HELD and state.HasField("fallback"):
            if _names(dropped, state.fallback):
                self._kept_reminded = False
        elif (
            state.status == S.RESERVATION_STATUS_CONFIRMED
            and self._reminded_version == state.version
            and _names(dropped, state)
        ):
            self._reminded_version = dropped.version

    def _slot_words(self) -> str:
        """Where the booking now is, for the details: a move the run takes from
        its row has no summary of the API's to show."""
        # the details alone read it: they are queried, never recorded
        with workflow.unsafe.sandbox_unrestricted():
            span = local_span(
                _dt(self._state.starts_at), _dt(self._state.ends_at),
                self._state.rules.timezone,
            )  # fmt: skip
        return f"seat {self._state.seat_id} · {span}"

    async def _sleep_until(self, instant: datetime, what: str, when: datetime) -> None:
        """A durable timer that a change of the reservation cuts short."""
        moved = f"Moved: {self._moved_to}. " if self._moved_to else ""
        # only the details read the zone database: they are queried, never recorded
        with workflow.unsafe.sandbox_unrestricted():
            local = local_time(when, self._state.rules.timezone)
        self._show(f"{moved}Waiting for {what} {local}")
        self._state.waiting_for = f"{what} {when.isoformat()}"
        delay = instant - workflow.now()
        if delay > timedelta(0):
            try:
                # recorded, so in UTC: the zone database may differ at replay
                await workflow.wait_condition(
                    lambda: self._changed or self._cancel is not None,
                    timeout=delay,
                    timeout_summary=f"{what} {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
                )
            except TimeoutError:
                self._clock_floor = max(self._clock_floor, instant)
        self._changed = False

    async def _close(
        self,
        status: pb.ReservationStatus,
        mail: pb.MailKind,
        *,
        reason: str = "",
        release_from: datetime | None = None,
        decided_on: pb.ReservationStatus | None = None,
    ) -> bool:
        """Close unless an update, waited for here, changed the status the close
        was `decided_on`; False then, for the timeline to look again."""
        async with self._lock:
            if (
                decided_on is not None
                and self._state.status != decided_on
                and self._patched(PATCH_DEADLINE_LOOKS_AGAIN)
            ):
                return False
            release = pb.ReleaseInput(
                reservation_id=self._state.reservation_id, status=status, reason=reason
            )
            if release_from is not None:
                _set(release.release_from, release_from)
            if decided_on is not None and self._patched(PATCH_RUN_CATCHES_UP):
                release.version = self._state.version
                release.decided_on = decided_on
            released = await workflow.execute_activity(
                "release_seat",
                release,
                result_type=pb.ReleaseResult,
                summary=f"release the seat ({status_name(status)})",
                **DB_ACTIVITY,
            )
            if released.HasField("ahead"):
                return self._catch_up(released.ahead)
            if released.closed.version > self._state.version and self._patched(
                PATCH_CANCEL_MAILS_THE_ROW
            ):
                # a cancel of a run behind a move: its mail names the moved slot
                self._adopt_slot(released.closed, "its record")
            # the client was never sent a move still waiting for staff: the
            # mail names the booking they know, the one staff confirmed
            known = None
            if self._state.HasField("fallback"):
                known = pb.Slot()
                known.CopyFrom(self._state.fallback)
                if released.HasField("closed") and self._patched(
                    PATCH_CLOSES_ON_FALLBACK
                ):
                    self._adopt_slot(released.closed, "its record")
            self._state.status = status
            self._state.cancel_reason = reason
            self._state.ClearField("fallback")
            self._upsert_status()
            self._queue_mail(mail, due_at=workflow.now(), slot=known)
            return True

    async def _record(
        self,
        status: pb.ReservationStatus,
        *,
        guarded_by: str = "",
        decided_on: pb.ReservationStatus = S.RESERVATION_STATUS_UNSPECIFIED,
    ) -> bool:
        """False when a record guarded by that patch found the row ahead of this
        run (or not `decided_on`), which has taken it over and not closed."""
        request = pb.StatusInput(
            reservation_id=self._state.reservation_id, status=status
        )
        _set(request.at, workflow.now())
        if guarded_by and self._patched(guarded_by):
            request.version = self._state.version
            request.decided_on = decided_on
        recorded = await workflow.execute_activity(
            "record_status",
            request,
            result_type=pb.StatusResult,
            summary=f"mark {status_name(status)}",
            **DB_ACTIVITY,
        )
        if recorded.HasField("ahead"):
            return self._catch_up(recorded.ahead)
        self._state.status = status
        if status == S.RESERVATION_STATUS_CHECKED_IN:
            self._state.checked_in_at.CopyFrom(request.at)
        self._upsert_status()
        return True

    def _announce_version(self) -> None:
        # a hold moved before staff confirmed it was never announced: the
        # client's first mail is the confirmation, not "your booking has moved"
        if self._lean:
            first = self._confirmation_version == 0
        else:
            first = self._state.version == 1
        self._confirmation_version = self._state.version
        kind = pb.MAIL_KIND_CONFIRMATION if first else pb.MAIL_KIND_RESCHEDULE
        self._queue_mail(kind, due_at=workflow.now())

    # Mail goes out beside the timeline: a failing server never holds up the booking.

    def _queue_mail(
        self,
        kind: pb.MailKind,
        *,
        due_at: datetime,
        slot: pb.Slot | None = None,
        kept_booking: bool = False,
    ) -> None:
        where = slot if slot is not None else self._state
        mail = pb.MailInput(
            reservation_id=self._state.reservation_id,
            kind=kind,
            version=self._state.version,
            seat_id=where.seat_id,
            cancel_reason=self._state.cancel_reason,
        )
        mail.starts_at.CopyFrom(where.starts_at)
        mail.ends_at.CopyFrom(where.ends_at)
        mail.move_lapsed = self._lapsed_version == self._state.version
        mail.kept_booking = kept_booking
        if kind == pb.MAIL_KIND_REMINDER:
            self._last_reminder_version = self._state.version
        mail.may_give_way = kind in _INVITATIONS and self._patched(PATCH_MAIL_GIVES_WAY)
        _set(mail.due_at, due_at)
        unsent = self._unsent_invitation() if kind in _INVITATIONS else None
        if unsent is not None and self._patched(PATCH_ONE_INVITATION):
            _take_slot(unsent, mail)
        else:
            self._mails.append(mail)
            self._queued_behind = self._queued_behind or len(self._mails) > 1
        if self._state.failed_mails and self._patched(PATCH_FAILED_STAYS_FAILED):
            # it waits behind the failed one, which ops must still see to retry
            if self._patched(PATCH_NEXT_MAIL_RETRIES):
                self._retry_requested = True
            return
        self._set_notification(pb.NOTIFICATION_STATUS_PENDING)

    async def _deliver_mails(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._mails))
            mail = self._mails[0]
            kind = pb.MailKind.Name(mail.kind).removeprefix("MAIL_KIND_").lower()
            self._sending = mail
            # set for the length of the round: the activity's own retries are
            # invisible to the workflow, so this is all it can tell
            self._show(mail_held=f"{kind} mail is being sent; its attempts, and"
                       " what failed them, show under Pending Activities")  # fmt: skip
            try:
                result = await workflow.execute_activity(
                    "send_mail",
                    mail,
                    result_type=pb.MailResult,
                    task_queue=self._input.mail_task_queue or None,
                    # a little over the SMTP timeout: an attempt lost with a killed
                    # worker is retried this soon, not after a long wait
                    start_to_close_timeout=MAIL_ATTEMPT_TIMEOUT,
                    retry_policy=MAIL_RETRY,
                    summary=f"{kind} mail, version {mail.version}",
                )
            except ActivityError as error:
                self._sending = None
                self._show(mail_held="")
                newer = [m for m in self._mails[1:] if m.kind in _INVITATIONS]
                if _failed_as(error, "MailSuperseded"):
                    if newer:
                        self._fold_in(mail, newer[-1])
                    else:
                        # moved without a mail of its own (a move waiting for
                        # staff): this one still names what the client holds
                        mail.may_give_way = False
                    continue
                if _failed_as(error, "MailThrottled") and self._patched(
                    PATCH_MAIL_WAITS_ITS_TURN
                ):
                    # a move meanwhile folds into it, so the flood comes to one
                    await self._hold_mail(
                        MAIL_TURN_PAUSE, kind, "its recipient's turn",
                        f"{kind} mail waits: its recipient has had the most"
                        " mails a window allows",
                    )  # fmt: skip
                    continue
                if _failed_as(error, "DatabaseUnavailable") and self._patched(
                    PATCH_MAIL_WAITS_FOR_DATABASE
                ):
                    workflow.logger.warning(
                        "%s mail waits for PostgreSQL to come back", kind
                    )
                    await self._hold_mail(
                        DATABASE_OUTAGE_PAUSE, kind, "PostgreSQL",
                        f"{kind} mail waits for PostgreSQL",
                    )  # fmt: skip
                    continue
                if (
                    mail.kind in _INVITATIONS
                    and newer
                    and self._patched(PATCH_ONE_INVITATION)
                ):
                    self._fold_in(mail, newer[-1])
                workflow.logger.warning(
                    "%s mail failed; waiting for retry_notification", kind
                )
                self._state.failed_mails.append(mail.kind)
                self._set_notification(pb.NOTIFICATION_STATUS_FAILED)
                self._retry_requested = False
                behind, self._queued_behind = self._queued_behind, False
                self._show(mail_held=f"{kind} mail failed; ops send"
                           " retry_notification to try it again")  # fmt: skip
                await self._wait_for_retry(mail, kind, behind=behind)
                self._show(mail_held="")
                del self._state.failed_mails[:]
                self._set_notification(pb.NOTIFICATION_STATUS_PENDING)
                continue
            self._sending = None
            self._show(mail_held="")
            if result.stale and self._patched(PATCH_STALE_REMINDER_OWED):
                self._stale_reminder = mail
                self._changed = True
            self._sent_any = self._sent_any or result.sent or result.duplicate
            self._queued_behind = False
            if self._mails and self._mails[0] is mail:
                self._mails.pop(0)
            if not self._mails:
                # a client who wants no mail has none sent, not "sent"
                done = self._sent_any or not self._lean
                self._set_notification(
                    pb.NOTIFICATION_STATUS_SENT if done else pb.NOTIFICATION_STATUS_NONE
                )

    def _fold_in(self, mail: pb.MailInput, newer: pb.MailInput) -> None:
        _take_slot(mail, newer)
        self._mails = [m for m in self._mails if m is not newer]

    def _unsent_invitation(self) -> pb.MailInput | None:
        """The confirmation or move mail still to go out; one being sent cannot
        change any more."""
        for queued in reversed(self._mails):
            if queued.kind in _INVITATIONS and queued is not self._sending:
                return queued
        return None

    async def _wait_for_retry(
        self, mail: pb.MailInput, kind: str, *, behind: bool
    ) -> None:
        """Until ops retry or the failed mail is dropped; where mails came due
        behind it during its round, at most a pause, then it is tried again."""

        def retried_or_dropped() -> bool:
            return self._retry_requested or mail not in self._mails

        if not (behind and self._patched(PATCH_RETRY_MAILS_BEHIND)):
            await workflow.wait_condition(retried_or_dropped)
            return
        # a reminder behind it is worth something only before the start
        pause = MAILS_BEHIND_PAUSE
        until_start = _dt(self._state.starts_at) - workflow.now()
        if until_start > timedelta(0):
            pause = min(pause, until_start / 2)
        again = (workflow.now() + pause).astimezone(UTC)
        try:
            await workflow.wait_condition(
                retried_or_dropped,
                timeout=pause,
                timeout_summary=f"{kind} mail tried again"
                f" {again:%Y-%m-%d %H:%M:%S} UTC",
            )
        except TimeoutError:
            pass

    def _take_over(
        self, claim: pb.ClaimResult | pb.ReservationRow, source: str = "an earlier run"
    ) -> bool:
        """Take the booking as an earlier run left it; True when that run closed it."""
        if claim.version > self._state.version:
            self._adopt_slot(claim, source)
        if claim.status not in TERMINAL:
            return False
        # it closed before this run began, and its mails went out then
        self._upsert_status()
        self._show(f"Closed: {status_name(claim.status)}, before this run began")
        self._state.waiting_for = ""
        return True

    async def _read_row(self) -> bool:
        """Take the row over if it leads this run; True when it is closed."""
        async with self._lock:
            request = pb.StatusInput(reservation_id=self._state.reservation_id)
            row = await workflow.execute_local_activity(
                "read_row",
                request,
                result_type=pb.ReservationRow,
                summary="look at the reservation's row",
                **DB_ACTIVITY,
            )
            leads = row.version > self._state.version or (
                row.version == self._state.version and row.status != self._state.status
            )
            if not row.version or not leads:
                return False
            return self._catch_up(row)

    def _adopt_slot(self, row: pb.ClaimResult | pb.ReservationRow, source: str) -> None:
        self._state.seat_id = row.seat_id
        self._state.starts_at.CopyFrom(row.starts_at)
        self._state.ends_at.CopyFrom(row.ends_at)
        self._state.version = row.version
        self._moved_to = (
            f"{self._slot_words()}, version {row.version}, taken over from {source}"
        )
        workflow.upsert_search_attributes(
            [
                SEAT_ID.value_set(row.seat_id),
                RESERVATION_START.value_set(_dt(row.starts_at)),
            ]
        )

    def _catch_up(self, row: pb.ClaimResult | pb.ReservationRow) -> bool:
        """Take over the row a reset left ahead of this run; True when it is closed.

        Its mails went out from the run that made it: the mail activity counts a
        confirmation or move mail of a version already sent as sent, and sends
        the reminder of a version once.
        """
        was = self._state.status
        if (
            row.HasField("rules")
            and row.rules != self._state.rules
            and self._patched(PATCH_TAKES_ROW_RULES)
        ):
            self._state.rules.CopyFrom(row.rules)
        self._state.status = row.status
        if row.HasField("fallback"):
            self._state.fallback.CopyFrom(row.fallback)
        else:
            self._state.ClearField("fallback")
        if row.status == S.RESERVATION_STATUS_HELD and was != row.status:
            self._hold_deadline = self._hold_end(row)
        if self._take_over(row, "its record"):
            return True
        if self._state.status != was:
            self._upsert_status()
        return False

    def _hold_end(self, row: pb.ClaimResult | pb.ReservationRow) -> datetime:
        """When the hold of a booking just held, or of a held row taken over, ends."""
        if row.HasField("hold_expires_at") and self._patched(PATCH_ROW_KEEPS_HOLD_END):
            return _dt(row.hold_expires_at)
        # a new claim, or a row held before it kept its hold's end
        return workflow.now() + timedelta(minutes=self._state.rules.hold_minutes)

    def _patched(self, patch_id: str) -> bool:
        if self._input.revision >= _FOLDED_IN.get(patch_id, REVISION + 1):
            return True
        return workflow.patched(patch_id)

    def _set_notification(self, status: pb.NotificationStatus) -> None:
        if self._state.notification_status == status:
            return
        self._state.notification_status = status
        if self._lean:
            # support staff look for failures; the query tells pending from sent
            label = "failed" if status == pb.NOTIFICATION_STATUS_FAILED else "ok"
            if label == self._announced_notification:
                return
            self._announced_notification = label
        else:
            label = notification_name(status)
        workflow.upsert_search_attributes([NOTIFICATION_STATUS.value_set(label)])

    def _upsert_status(self) -> None:
        name = status_name(self._state.status)
        if self._lean and name == self._announced_status:
            return
        self._announced_status = name
        workflow.upsert_search_attributes([RESERVATION_STATUS.value_set(name)])

    def _claim_input(
        self,
        *,
        seat_id: str,
        starts_at: datetime,
        ends_at: datetime,
        version: int,
        reschedule: bool,
        requested_by: str = "",
    ) -> pb.ClaimInput:
        claim = pb.ClaimInput(
            reservation_id=self._state.reservation_id,
            client_id=self._state.client_id,
            seat_id=seat_id,
            version=version,
            reschedule=reschedule,
            requested_by=requested_by,
            request_hash="" if reschedule else self._input.request_hash,
        )
        _set(claim.starts_at, starts_at)
        _set(claim.ends_at, ends_at)
        _set(claim.now, workflow.now())
        return claim

    # The API's entry points.

    @workflow.update(name="hold")
    async def hold(self, request: pb.HoldRequest) -> pb.HoldResult:
        await workflow.wait_condition(lambda: self._hold is not None)
        assert self._hold is not None
        result = pb.HoldResult()
        result.CopyFrom(self._hold)
        result.state.CopyFrom(self._answer())
        result.state.ClearField("hold")
        return result

    @hold.validator
    def _validate_hold(self, request: pb.HoldRequest) -> None:
        if request.request_hash != self._input.request_hash:
            raise ApplicationError(
                "this Idempotency-Key was used for another request",
                type="IdempotencyMismatch",
            )

    @workflow.update(name="confirm")
    async def confirm(self, request: pb.ConfirmRequest) -> pb.ReservationState:
        async with self._lock:
            # a move that held the lock first is not what staff looked at
            self._require_version(request.expected_version)
            if self._state.status == S.RESERVATION_STATUS_HELD:
                await self._staff_record(
                    S.RESERVATION_STATUS_CONFIRMED, S.RESERVATION_STATUS_HELD, "confirm"
                )
                # the move is what staff confirmed; its fallback is released
                self._state.ClearField("fallback")
                if self._patched(PATCH_CONFIRM_MAIL_IN_UPDATE):
                    self._announce_version()
            elif self._checkin_open():
                await self._staff_record(
                    S.RESERVATION_STATUS_CHECKED_IN,
                    S.RESERVATION_STATUS_CONFIRMED,
                    "confirm",
                )
            else:
                raise self._invalid("confirm")
            self._changed = True
            return self._state

    async def _staff_record(
        self,
        status: pb.ReservationStatus,
        decided_on: pb.ReservationStatus,
        action: str,
    ) -> None:
        if await self._record(
            status, guarded_by=PATCH_ACTS_READ_THE_ROW, decided_on=decided_on
        ):
            return
        self._changed = True
        if self._state.status in TERMINAL:
            raise self._invalid(action)
        # staff acted on what a run behind its row showed them
        raise ApplicationError(
            f"version: by its record the reservation is"
            f" {status_name(self._state.status)} at version {self._state.version}"
            " now; look at it again",
            type="InvalidState",
        )

    @confirm.validator
    def _validate_confirm(self, request: pb.ConfirmRequest) -> None:
        self._require_version(request.expected_version)
        # a cancel that arrived first stands: staff are not told "confirmed"
        # of a booking the client has already let go
        if self._cancel is not None or (
            self._state.status != S.RESERVATION_STATUS_HELD and not self._checkin_open()
        ):
            raise self._invalid("confirm")

    @workflow.update(name="check_in")
    async def check_in(self, request: pb.CheckInRequest) -> pb.ReservationState:
        async with self._lock:
            self._require_version(request.expected_version)
            if self._kept_checkin_open() and self._patched(
                PATCH_CHECK_IN_TAKES_BACK_MOVE
            ):
                # the client came to the booking staff confirmed: the move
                # they asked for meanwhile is taken back, with its mail
                closed = await self._revert_move_locked()
                self._changed = True
                if closed:
                    raise self._invalid("check in")
                self._confirmation_version = self._state.version
                # taken back at the desk, not lapsed: a later confirm says so
                self._lapsed_version = 0
            if not self._checkin_open():
                raise self._invalid("check in")
            await self._staff_record(
                S.RESERVATION_STATUS_CHECKED_IN,
                S.RESERVATION_STATUS_CONFIRMED,
                "check in",
            )
            self._changed = True
            return self._state

    @check_in.validator
    def _validate_check_in(self, request: pb.CheckInRequest) -> None:
        self._require_version(request.expected_version)
        if self._checkin_open() or self._kept_checkin_open():
            return
        opens = _dt(self._state.starts_at) - CHECKIN_OPENS_BEFORE
        if (
            self._state.status == S.RESERVATION_STATUS_CONFIRMED
            and workflow.now() < opens
        ):
            with workflow.unsafe.sandbox_unrestricted():
                when = local_iso(opens, self._state.rules.timezone)
            raise ApplicationError(f"check-in opens at {when}", type="InvalidState")
        raise self._invalid("check in")

    @workflow.update(name="reschedule")
    async def reschedule(self, request: pb.RescheduleRequest) -> pb.RescheduleResult:
        async with self._lock:
            self._require_reschedulable()
            if 0 < request.expected_version < self._state.version and self._patched(
                PATCH_OLD_MOVES_REFUSED
            ):
                # asked of a version moved on from: a move a reset reapplies,
                # or one that raced another; either would undo what came since
                self._require_version(request.expected_version)
            claim = await self._claim_move(request)
            if (
                claim.rule == STALE_RULE
                and claim.version
                and (self._patched(PATCH_RUN_CATCHES_UP))
            ):
                closed = self._catch_up(claim)
                try:
                    if closed:
                        raise self._invalid("reschedule")
                    # asked of the row as it now stands, not reapplied by a
                    # reset after the moves that came since
                    if request.expected_version == claim.version or not (
                        self._patched(PATCH_MOVE_NAMES_ITS_VERSION)
                    ):
                        self._require_reschedulable()
                        claim = await self._claim_move(request)
                finally:
                    # the timeline wakes once the move is decided: woken before,
                    # it would mail the row's version, then this move's
                    self._changed = True
            seat_id, starts_at, ends_at = self._move_target(request)
            version = self._state.version + 1
            result = pb.RescheduleResult(
                outcome=claim.outcome,
                conflict=claim.conflict,
                rule=claim.rule,
                description=claim.description,
            )
            if claim.outcome == pb.HOLD_OUTCOME_HELD:
                back_home = False
                if (
                    claim.status == S.RESERVATION_STATUS_CONFIRMED
                    and self._state.status == S.RESERVATION_STATUS_HELD
                    and self._state.HasField("fallback")
                ):
                    # staff's own move, or the client's back inside what staff
                    # had confirmed: nothing left for staff to answer
                    self._state.status = S.RESERVATION_STATUS_CONFIRMED
                    self._upsert_status()
                    kept = self._state.fallback
                    back_home = (seat_id, starts_at, ends_at) == (
                        kept.seat_id,
                        _dt(kept.starts_at),
                        _dt(kept.ends_at),
                    )
                if claim.HasField("fallback"):
                    self._state.fallback.CopyFrom(claim.fallback)
                else:
                    self._state.ClearField("fallback")
                self._state.seat_id = seat_id
                _set(self._state.starts_at, starts_at)
                _set(self._state.ends_at, ends_at)
                self._state.version = version
                self._state.coworking_id = claim.coworking_id
                self._state.rules.CopyFrom(claim.rules)
                self._moved_to = request.summary
                if (
                    claim.status == S.RESERVATION_STATUS_HELD
                    and self._state.status == S.RESERVATION_STATUS_CONFIRMED
                    and self._patched(PATCH_CLIENT_MOVE_WAITS_FOR_STAFF)
                ):
                    self._state.status = S.RESERVATION_STATUS_HELD
                    self._hold_deadline = workflow.now() + timedelta(
                        minutes=claim.rules.hold_minutes
                    )
                    self._upsert_status()
                    self._kept_reminded = self._reminded_version >= version - 1
                workflow.upsert_search_attributes(
                    [
                        SEAT_ID.value_set(seat_id),
                        COWORKING_ID.value_set(claim.coworking_id),
                        RESERVATION_START.value_set(starts_at),
                    ]
                )
                self._changed = True
                if back_home and self._patched(PATCH_BACK_HOME_UNANNOUNCED):
                    # the client was told of nothing since the slot they hold
                    self._confirmation_version = version
                    if self._kept_reminded and self._patched(
                        PATCH_KEPT_BOOKING_REMINDED
                    ):
                        self._reminded_version = version
                elif self._state.status == S.RESERVATION_STATUS_CONFIRMED and (
                    self._patched(PATCH_MOVE_MAIL_IN_UPDATE)
                ):
                    self._announce_version()
            result.state.CopyFrom(self._answer())
            result.state.ClearField("hold")
            return result

    def _move_target(
        self, request: pb.RescheduleRequest
    ) -> tuple[str, datetime, datetime]:
        """The seat and times a move asks for; what it leaves out stays as it is."""
        state = self._state
        starts_at = request if request.HasField("starts_at") else state
        ends_at = request if request.HasField("ends_at") else state
        return (
            request.seat_id or state.seat_id,
            _dt(starts_at.starts_at),
            _dt(ends_at.ends_at),
        )

    async def _claim_move(self, request: pb.RescheduleRequest) -> pb.ClaimResult:
        seat_id, starts_at, ends_at = self._move_target(request)
        version = self._state.version + 1
        claim = self._claim_input(
            seat_id=seat_id, starts_at=starts_at, ends_at=ends_at,
            version=version, reschedule=True, requested_by=request.requested_by,
        )  # fmt: skip
        # only a client's move of a confirmed booking can go back to held; the
        # claim decides by the coworking's rules as they are now, which may
        # have turned staff confirmation on since the booking was made
        claim.keep_fallback = (
            self._state.status == S.RESERVATION_STATUS_CONFIRMED
            and request.requested_by.startswith("client:")
            and self._patched(PATCH_MOVE_KEEPS_BOOKING)
        )
        # the new slot is claimed before the old one goes, in one transaction
        return await workflow.execute_local_activity(
            "claim_seat",
            claim,
            result_type=pb.ClaimResult,
            summary=f"claim the new seat and time, version {version}",
            **DB_ACTIVITY,
        )  # fmt: skip

    @reschedule.validator
    def _validate_reschedule(self, request: pb.RescheduleRequest) -> None:
        self._require_reschedulable()
        # a validator's refusal is not written to the history
        if workflow.info().get_current_history_length() > MOVE_HISTORY_BUDGET:
            raise ApplicationError(
                "this reservation has been moved, or refused a move, too many"
                " times; cancel it and book again",
                type="InvalidState",
            )

    # Signals come from the Temporal UI and the CLI with whatever input was typed:
    # none, one, or several (the CLI repeats --input). A handler that took a
    # fixed number of inputs failed every workflow task once sent another, and
    # the reservation stood still for good. So each takes any number, reads the
    # first, and says in the worker's log what it ignored.

    @workflow.signal(name=CANCEL)
    def cancel(self, *inputs: object) -> None:
        if self._dropped_as_before(inputs):
            return
        first = inputs[0] if inputs else None
        if isinstance(first, str) and self._patched(PATCH_CANCEL_TAKES_TEXT):
            # what ops type in the UI's input box: the reason, in quotes
            request: pb.CancelRequest | None = pb.CancelRequest(reason=first)
        else:
            request = _first_input(
                CANCEL,
                inputs,
                pb.CancelRequest,
                mend=lambda: self._patched(PATCH_CANCEL_TAKES_TEXT),
            )
        if request is None:
            return
        if self._cancel is not None or self._state.status in TERMINAL:
            return
        if workflow.now() >= _dt(self._state.ends_at) and self._patched(
            PATCH_NO_CANCEL_AFTER_END
        ):
            return
        # the API's rules for a reason hold for one signalled past it: a NUL
        # stopped the release in PostgreSQL, retried for ever
        request.reason = _clean_reason(request.reason)
        self._cancel = request

    # Neither of the next two reads its input. Before the patch an input that
    # did not read as their message dropped the signal.

    @workflow.signal(name=LOOK_AT_ROW)
    def look_at_row(self, *inputs: object) -> None:
        if self._dropped_as_before(inputs):
            return
        if not self._taken(_first_input(LOOK_AT_ROW, inputs, pb.LookAtRowRequest)):
            return
        if self._state.status in TERMINAL:
            return
        self._look_at_row = True
        self._changed = True

    @workflow.signal(name=RETRY_NOTIFICATION)
    def retry_notification(self, *inputs: object) -> None:
        if self._dropped_as_before(inputs):
            return
        request = _first_input(RETRY_NOTIFICATION, inputs, pb.RetryNotificationRequest)
        if not self._taken(request):
            return
        self._retry_requested = True

    def _dropped_as_before(self, inputs: tuple[object, ...]) -> bool:
        """Whether a signal with an input no converter read is dropped, as the
        SDK dropped it before the converter passed such input on."""
        return any(isinstance(one, Unreadable) for one in inputs) and not (
            self._patched(PATCH_UNREADABLE_SIGNAL_TAKEN)
        )

    def _taken(self, request: Message | None) -> bool:
        return request is not None or self._patched(PATCH_SIGNAL_TAKES_ANY_INPUT)

    @workflow.query(name="state")
    def state(self) -> pb.ReservationState:
        return self._answer()

    def _answer(self) -> pb.ReservationState:
        """The state as the API is told it: a held one says until when."""
        if (
            self._state.status != S.RESERVATION_STATUS_HELD
            or self._hold_deadline is None
        ):
            return self._state
        answer = pb.ReservationState()
        answer.CopyFrom(self._state)
        _set(answer.hold_expires_at, self._expires_at())
        return answer

    def _checkin_open(self) -> bool:
        if (
            self._state.status != S.RESERVATION_STATUS_CONFIRMED
            or self._cancel is not None
        ):
            return False
        now = workflow.now()
        starts_at = _dt(self._state.starts_at)
        return starts_at - CHECKIN_OPENS_BEFORE <= now < _dt(self._state.ends_at)

    def _kept_checkin_open(self) -> bool:
        """Whether a move waits for staff while the booking it keeps, and not
        the move, is open for check-in: that booking's start comes first, and
        the move lapses there, so its window is the half hour before it."""
        state = self._state
        if (
            state.status != S.RESERVATION_STATUS_HELD
            or not state.HasField("fallback")
            or self._cancel is not None
        ):
            return False
        now = workflow.now()
        kept_start = _dt(state.fallback.starts_at)
        # where the move's own start is as near, the client at the desk may
        # have come for either: staff confirm the move, or move it back, first
        moved_near = _dt(state.starts_at) - CHECKIN_OPENS_BEFORE <= now
        return kept_start - CHECKIN_OPENS_BEFORE <= now < kept_start and not moved_near

    def _require_version(self, expected: int) -> None:
        # requests of old histories carry no version, so they replay unchanged
        if expected and expected != self._state.version:
            raise ApplicationError(
                version_moved_on(self._state.version, expected), type="InvalidState"
            )

    def _require_reschedulable(self) -> None:
        if self._state.status not in (
            S.RESERVATION_STATUS_HELD,
            S.RESERVATION_STATUS_CONFIRMED,
        ):
            raise self._invalid("reschedule")
        if self._cancel is not None or workflow.now() >= _dt(self._state.starts_at):
            raise self._invalid("reschedule")

    def _invalid(self, action: str) -> ApplicationError:
        what = f"{a_status(status_name(self._state.status))} reservation"
        live = self._state.status not in TERMINAL
        if live and self._cancel is not None:
            what = "a reservation that is being cancelled"
        elif live and workflow.now() >= _dt(self._state.ends_at):
            what = "a reservation that has ended"
        elif live and action == "reschedule":
            if workflow.now() >= _dt(self._state.starts_at):
                what = "a reservation that has started"
        elif (
            live and action == "confirm" and self._lapsed_version == self._state.version
        ):
            # staff who meant to accept the move must not read "done"
            what += (
                ": the client's move lapsed unconfirmed, and it went back"
                " to the seat and time staff had confirmed"
            )
        elif (
            live
            and action == "check in"
            and self._state.status == S.RESERVATION_STATUS_HELD
            and self._state.HasField("fallback")
        ):
            # the client at the desk may be there for the booking staff confirmed
            what += (
                ": the client's move waits for staff; to check them in for the"
                " booking staff confirmed, move it back to that seat and time"
                " first (then it is confirmed), or confirm the move"
            )
        return ApplicationError(f"cannot {action} {what}", type="InvalidState")


_M = TypeVar("_M", bound=Message)


def _first_input(
    name: str,
    inputs: tuple[object, ...],
    kind: type[_M],
    *,
    mend: Callable[[], bool] = lambda: False,
) -> _M | None:
    """A signal's first input as `kind` (empty for none or JSON null), as the
    converter read it with that type; None when it is no such message. Where
    `mend()` says so, lone surrogates in plain JSON become spaces: a history
    from before had such an input dropped."""
    if len(inputs) > 1:
        workflow.logger.warning(
            "signal %s: %d inputs, only the first is read", name, len(inputs)
        )
    first = inputs[0] if inputs else None
    if first is None:
        return kind()
    if isinstance(first, kind):
        return first
    if isinstance(first, Unreadable):
        workflow.logger.warning(
            "signal %s: input ignored, no converter reads %s: %s",
            name, first.encoding or "no encoding", first.reason,
        )  # fmt: skip
        return None
    # plain JSON, as the UI sends it, or another message; a bare string or a
    # list is no message
    if isinstance(first, dict | Message):
        try:
            fields = cast(
                dict[str, Any],
                json_format.MessageToDict(first)
                if isinstance(first, Message)
                else first,
            )
            try:
                return json_format.ParseDict(fields, kind(), ignore_unknown_fields=True)
            except json_format.ParseError:
                mended = _no_surrogates(fields)
                if mended == fields or not mend():
                    raise
                return json_format.ParseDict(
                    cast(dict[str, Any], mended), kind(), ignore_unknown_fields=True
                )
        # whatever the input holds, a signal's handler must not raise: that
        # fails the workflow task, for ever
        except Exception as error:  # noqa: BLE001
            workflow.logger.warning("signal %s: input ignored: %s", name, error)
            return None
    workflow.logger.warning(
        "signal %s: input ignored, not a JSON object: %s", name, type(first).__name__
    )
    return None


def _no_surrogates(value: object) -> object:
    """JSON text may escape a lone surrogate, which no protobuf string holds."""
    if isinstance(value, str):
        return "".join(
            " " if unicodedata.category(char) == "Cs" else char for char in value
        )
    if isinstance(value, dict):
        return {
            _no_surrogates(key): _no_surrogates(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_no_surrogates(item) for item in value]
    return value


def _clean_reason(reason: str) -> str:
    """A reason as the API would have taken it: what it refuses (controls, line
    breaks, bidi and other format characters, unassigned code points) becomes a
    space, and it is cut at the API's length. The API's own come back unchanged."""
    kept = "".join(
        " "
        if unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs", "Co", "Cn")
        or (unicodedata.category(char) == "Cf" and char not in "\u200c\u200d")
        else char
        for char in unicodedata.normalize("NFC", reason)
    )
    # a mail reader would decode "=?...?=" as an encoded word of ours
    kept = kept.replace("=?", "= ?")
    return kept.strip()[:REASON_MAX].rstrip()
