"""Mail for a reservation: subject, plain text, and an iCalendar invitation.

Everything that reaches a header is checked here again, though the API already
refuses control characters: a message that cannot be built safely is a
permanent failure, never a header injection.
"""

from __future__ import annotations

import contextlib
import email.policy
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import (
    Address,
    HeaderRegistry,
    MessageIDHeader,
    UnstructuredHeader,
)
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from icalendar import (
    Calendar,
    Event,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vCalAddress,
)

from proto import reservation_pb2 as pb


class MailBuildError(Exception):
    """The message cannot be built; retrying would not help."""


# Headers whose value holds no space: folded, they only move to a line of
# their own, which tools that match Message-IDs by the raw line then miss. The
# SMTP client flattens with a policy of its own, but asks each header object
# to fold itself, so the header classes are where this is decided.
class _OneLine:
    def fold(self, *, policy: Policy) -> str:
        text = str(self)
        if not text.isascii():
            return super().fold(policy=policy)  # type: ignore[misc]
        return f"{self.name}: {text}{policy.linesep}"  # type: ignore[attr-defined]


class _MessageIdHeader(_OneLine, MessageIDHeader):
    pass


class _ReservationHeader(_OneLine, UnstructuredHeader):
    pass


_HEADERS = HeaderRegistry()
# the stubs type the header classes apart from the base they are mixed into
_HEADERS.map_to_type("message-id", _MessageIdHeader)  # type: ignore[arg-type]
_HEADERS.map_to_type("x-tlounge-reservation", _ReservationHeader)  # type: ignore[arg-type]
POLICY = email.policy.default.clone(header_factory=_HEADERS)


@dataclass(frozen=True)
class MailContext:
    reservation_id: str
    kind: pb.MailKind
    version: int
    recipient_email: str
    recipient_name: str
    coworking_name: str
    coworking_address: str
    timezone: str
    seat_number: int
    starts_at: datetime
    ends_at: datetime
    cancel_reason: str = ""
    # the highest version of an invitation this client was sent; 0 for none
    invited_version: int = 0
    # a move mail of a client's move that staff left unconfirmed
    move_lapsed: bool = False
    # the reservation's version and status as its row stands now
    row_version: int = 0
    row_status: str = ""


_SUBJECTS = {
    pb.MAIL_KIND_CONFIRMATION: "Your seat is booked",
    pb.MAIL_KIND_REMINDER: "Reminder: your seat on",
    pb.MAIL_KIND_CANCELLATION: "Your booking is cancelled",
    pb.MAIL_KIND_RESCHEDULE: "Your booking has moved",
    pb.MAIL_KIND_EXPIRED: "Your booking was not confirmed in time",
    pb.MAIL_KIND_NO_SHOW: "We released your seat",
}
_LEADS = {
    pb.MAIL_KIND_CONFIRMATION: "your seat is booked.",
    pb.MAIL_KIND_REMINDER: "a reminder of your booking.",
    pb.MAIL_KIND_CANCELLATION: "your booking has been cancelled.",
    pb.MAIL_KIND_RESCHEDULE: "your booking has moved to a new time or seat.",
    pb.MAIL_KIND_EXPIRED: (
        "staff did not confirm your booking in time, so the seat is free again."
    ),
    pb.MAIL_KIND_NO_SHOW: (
        "nobody checked in, so the rest of the slot has been released."
    ),
}
_WITH_INVITATION = (pb.MAIL_KIND_CONFIRMATION, pb.MAIL_KIND_RESCHEDULE)
# Mails that end a reservation the client may hold in a calendar. An expiry
# follows a confirmation when a client moved the booking and staff did not
# confirm the move.
_WITH_CANCELLATION = (
    pb.MAIL_KIND_CANCELLATION,
    pb.MAIL_KIND_NO_SHOW,
    pb.MAIL_KIND_EXPIRED,
)


# A move that lapsed takes the booking back where staff confirmed it.
_LAPSED_SUBJECT = "Your change was not confirmed"
_LAPSED_LEAD = (
    "staff did not confirm the change you asked for in time, so your booking"
    " stays at the seat and time they had confirmed."
)


def _lapsed(context: MailContext) -> bool:
    return context.move_lapsed and context.kind == pb.MAIL_KIND_RESCHEDULE


def _subject(context: MailContext) -> str:
    if _lapsed(context):
        return _LAPSED_SUBJECT
    subject = _SUBJECTS[context.kind]
    if context.kind == pb.MAIL_KIND_REMINDER:
        # the lead is the coworking's to set, a day or more, so no "today"
        local = context.starts_at.astimezone(ZoneInfo(context.timezone))
        subject += f" {local:%a %d %b}, {local:%H:%M}"
    return subject


def kind_name(kind: int) -> str:
    return pb.MailKind.Name(kind).removeprefix("MAIL_KIND_").lower()


def message_id(reservation_id: str, kind: int, version: int, domain: str) -> str:
    """The same for every attempt at the same mail, so a repeat is recognisable."""
    return f"<reservation-{reservation_id}.{kind_name(kind)}.v{version}@{domain}>"


_JOINERS = frozenset({"\u200c", "\u200d"})


def _header_safe(value: str, field: str) -> str:
    for char in value:
        # the joiners are letters' glue in Persian, Indic scripts and emoji, and
        # the API accepts them in names; every other format character is refused
        if char in _JOINERS:
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise MailBuildError(f"{field} holds a control character")
    # encoded-words in input would be decoded by readers as if we had written them
    if "=?" in value:
        raise MailBuildError(f"{field} holds an encoded-word")
    return value


def _local(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).strftime("%A %d %B %Y, %H:%M %Z")


# the widest clock change in use is an hour
_CHANGE_WINDOW = timedelta(hours=1)
# how far the attached zone definition lists the changes; a local time after
# it would be read with the last offset listed, winter's
_ZONE_DEFINED_UNTIL = datetime(2038, 1, 1, tzinfo=UTC)


_ZONE_DEFINED_FROM = datetime(1970, 1, 1, tzinfo=UTC)


# a zone's clock at one instant: its offset, its name, and whether it is summer time
Clock = tuple[timedelta, str, bool]


def _clock(zone: ZoneInfo, epoch: int) -> Clock:
    local = datetime.fromtimestamp(epoch, UTC).astimezone(zone)
    return local.utcoffset() or timedelta(0), local.tzname() or "", bool(local.dst())


def offset_changes(
    zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, Clock, Clock]]:
    """Each instant between start and end at which the zone's clock changes,
    with the clock (offset, name, summer time) before and after it."""
    day = 86_400
    changes = []
    at, stop = int(start.timestamp()), int(end.timestamp())
    before = _clock(zone, at)
    while at < stop:
        after = _clock(zone, at + day)
        if after != before:
            # the change lies within the day: halve it down to the second
            low, high = at, at + day
            while high - low > 1:
                middle = (low + high) // 2
                if _clock(zone, middle) == before:
                    low = middle
                else:
                    high = middle
            changes.append((datetime.fromtimestamp(high, UTC), before, after))
        at, before = at + day, after
    return changes


@lru_cache(maxsize=64)
def _vtimezone(tzid: str) -> bytes:
    """A zone's definition, serialized: every change since 1970, so slow to
    work out (most of a mail's build time), and the same for every mail in
    that zone. Each onset is written on the clock that runs up to it, as
    RFC 5545 reads it; the library's own builder writes a summer onset on
    the summer clock, an hour late."""
    zone = ZoneInfo(tzid)
    start = _ZONE_DEFINED_FROM
    offset, name, _ = _clock(zone, int(start.timestamp()))
    definition = Timezone()
    definition.add("tzid", tzid)
    first = TimezoneStandard()
    first.add("dtstart", start.replace(tzinfo=None) + offset)
    first.add("tzoffsetfrom", offset)
    first.add("tzoffsetto", offset)
    first.add("tzname", name)
    definition.add_component(first)
    onsets: dict[tuple[bool, str, timedelta, timedelta], list[datetime]] = {}
    for at, (was, _, _), (now, now_name, summer) in offset_changes(
        zone, start, _ZONE_DEFINED_UNTIL
    ):
        onsets.setdefault((summer, now_name, was, now), []).append(
            at.replace(tzinfo=None) + was
        )
    for (summer, now_name, was, now), local_onsets in onsets.items():
        part = TimezoneDaylight() if summer else TimezoneStandard()
        part.add("dtstart", local_onsets[0])
        if len(local_onsets) > 1:
            part.add("rdate", local_onsets[1:])
        part.add("tzoffsetfrom", was)
        part.add("tzoffsetto", now)
        part.add("tzname", now_name)
        definition.add_component(part)
    return definition.to_ical()


def _ical_time(instant: datetime, zone: ZoneInfo) -> datetime:
    """The instant in the coworking's zone, or in UTC within an hour of a clock
    change, where a local time may read two ways, or past the zone definition.

    RFC 5545 reads a local time in the hour the clocks go back over as its
    first occurrence, so a booking in the second would show an hour early;
    and readers differ on a local time the clocks skip, or near an onset.
    """
    if instant >= _ZONE_DEFINED_UNTIL - _CHANGE_WINDOW:
        return instant.astimezone(UTC)
    local = instant.astimezone(zone)
    near = (instant - _CHANGE_WINDOW, instant + _CHANGE_WINDOW)
    if local.fold or any(
        moment.astimezone(zone).utcoffset() != local.utcoffset() for moment in near
    ):
        return instant.astimezone(UTC)
    return local


def _calendar(
    context: MailContext, *, uid: str, organizer: str, now: datetime, method: str,
    sequence: int, status: str,
) -> bytes:  # fmt: skip
    """One event in an iTIP message (RFC 5546): an invitation or its withdrawal,
    both naming the same UID, organizer, start and end."""
    calendar = Calendar()
    calendar.add("prodid", "-//T-Lounge//booking//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", now)
    zone = ZoneInfo(context.timezone)
    event.add("dtstart", _ical_time(context.starts_at, zone))
    event.add("dtend", _ical_time(context.ends_at, zone))
    event.add("summary", f"Seat {context.seat_number} at {context.coworking_name}")
    event.add("location", context.coworking_address)
    event.add("organizer", vCalAddress(f"mailto:{organizer}"))
    if method == "CANCEL":
        # RFC 5546 wants at least one attendee in a CANCEL, and none in a PUBLISH
        event.add("attendee", vCalAddress(f"mailto:{context.recipient_email}"))
    event.add("status", status)
    calendar.add_component(event)
    zones = []
    for tzid in sorted(calendar.get_missing_tzids(), reverse=True):
        with contextlib.suppress(ValueError):
            zones.append(_vtimezone(tzid))
    # RFC 5545 wants the definition of every TZID the event names, before it
    head, begin, rest = calendar.to_ical().partition(b"BEGIN:VEVENT\r\n")
    return head + b"".join(zones) + begin + rest


def _ascii_address(address: str) -> str:
    """An international domain as its IDNA form: the header encoder would
    otherwise write it as an encoded word, which no server delivers to."""
    try:
        ascii_email = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError as error:
        raise ValueError(str(error)) from None
    if ascii_email is None:
        raise ValueError("the mailbox name is not ASCII")
    return ascii_email


def _attachment(
    context: MailContext, *, sender: str, domain: str, now: datetime
) -> tuple[str, bytes] | None:
    """The iTIP method and calendar a mail carries, if any."""
    uid = f"reservation-{context.reservation_id}@{domain}"
    organizer = parseaddr(sender)[1] or f"noreply@{domain}"
    if context.kind in _WITH_INVITATION:
        method, sequence, status = "PUBLISH", context.version, "CONFIRMED"
    elif context.kind in _WITH_CANCELLATION and context.invited_version:
        # above every invitation sent, or calendars keep the event they hold
        sequence = max(context.invited_version, context.version) + 1
        method, status = "CANCEL", "CANCELLED"
    else:
        return None
    return method, _calendar(
        context, uid=uid, organizer=organizer, now=now, method=method,
        sequence=sequence, status=status,
    )  # fmt: skip


def build_message(
    context: MailContext, *, sender: str, domain: str, now: datetime | None = None
) -> EmailMessage:
    now = now or datetime.now(UTC)
    zone = ZoneInfo(context.timezone)
    try:
        recipient = Address(
            display_name=_header_safe(context.recipient_name, "recipient name"),
            addr_spec=_ascii_address(
                _header_safe(context.recipient_email, "recipient email")
            ),
        )
    except (ValueError, IndexError) as error:
        raise MailBuildError(f"recipient address: {error}") from error
    coworking = _header_safe(context.coworking_name, "coworking name")

    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"{_subject(context)}: {coworking}"
    message["Message-ID"] = message_id(
        context.reservation_id, context.kind, context.version, domain
    )
    message["Date"] = format_datetime(now)
    message["X-TLounge-Reservation"] = context.reservation_id

    lines = [
        f"Hello {context.recipient_name},",
        "",
        (_LAPSED_LEAD if _lapsed(context) else _LEADS[context.kind]).capitalize(),
        "",
        f"Where: {coworking}, {context.coworking_address}, seat {context.seat_number}",
        f"From:  {_local(context.starts_at, zone)}",
        f"To:    {_local(context.ends_at, zone)}",
    ]
    if context.cancel_reason and context.kind == pb.MAIL_KIND_CANCELLATION:
        lines.append(f"Reason: {context.cancel_reason}")
    lines += ["", f"Reservation {context.reservation_id}", "", "T-Lounge"]
    message.set_content("\n".join(lines))
    attachment = _attachment(context, sender=sender, domain=domain, now=now)
    if attachment is not None:
        method, calendar = attachment
        message.add_attachment(
            calendar,
            maintype="text",
            subtype="calendar",
            filename="reservation.ics",
            # the calendar's bytes are UTF-8; unnamed, a reader may take them for ASCII
            params={"method": method, "charset": "utf-8"},
        )
    return message
