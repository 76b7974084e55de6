"""A mail that ends a confirmed booking takes its event back out of the client's
calendar (RFC 5546 CANCEL), and a closure never covers a booking silently."""

import uuid
from datetime import UTC, datetime, time, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from aiosmtplib.email import flatten_message
from icalendar import Calendar

from activities.mail_render import MailContext, build_message, offset_changes
from proto import reservation_pb2 as pb
from tests.factories import create_coworking, create_seat
from tests.hardening.test_hardening_mail_headers import HEADERS
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import _kinds, wait_for

BERLIN = ZoneInfo("Europe/Berlin")


async def _ten_in_berlin(scene: Scene, *, days_ahead: int) -> datetime:
    day = (await scene.now()).astimezone(BERLIN).date() + timedelta(days=days_ahead)
    return datetime.combine(day, time(10), tzinfo=BERLIN).astimezone(UTC)


def _built(
    kind: int,
    starts_at: datetime,
    hours: float,
    *,
    timezone: str = "Europe/Berlin",
    version: int = 1,
    invited: int = 0,
) -> EmailMessage:
    """The mail of one reservation of Ada's at Lounge One, as the worker builds it."""
    context = MailContext(
        reservation_id="r-1", kind=kind, version=version,
        recipient_email="ada@example.com", recipient_name="Ada Lovelace",
        coworking_name="Lounge One", coworking_address="1 Test Street",
        timezone=timezone, seat_number=3, starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=hours), invited_version=invited,
    )  # fmt: skip
    return build_message(context, sender="T-Lounge <t@x.io>", domain="x.io")


def _calendar(message: EmailMessage) -> tuple[str, Calendar]:
    [part] = list(message.iter_attachments())
    assert (part.get_content_type(), part.get_filename()) == (
        "text/calendar",
        "reservation.ics",
    )
    return part.get_param("method"), Calendar.from_ical(part.get_content())


def _mail(smtp, kind_subject: str) -> EmailMessage:
    [found] = [m.message for m in smtp.received if m.message["Subject"] == kind_subject]
    return found


async def test_closure_refused_until_staff_cancel_then_the_mail_cancels_the_event(
    scene: Scene, smtp
) -> None:
    starts_at = await _ten_in_berlin(scene, days_ahead=2)
    ends_at = starts_at + timedelta(hours=1)
    booked = await scene.book(starts_at, ends_at)
    assert booked.status_code == 200, booked.text
    reservation_id = booked.json()["id"]
    await wait_for(lambda: _kinds(scene, reservation_id, "confirmation"))
    closure = {
        "seat_id": None,
        "starts_at": (starts_at - timedelta(hours=2)).isoformat(),
        "ends_at": (ends_at + timedelta(hours=2)).isoformat(),
        "reason": "Water damage",
    }
    url = f"/api/coworkings/{scene.coworking_id}/closures"
    day = starts_at.astimezone(BERLIN).date().isoformat()

    refused = await scene.api.post(url, json=closure, headers=scene.admin.headers)

    assert refused.status_code == 409
    assert refused.json() == {
        "error": "conflict",
        "description": "closure: 1 active reservation falls inside it; cancel it"
        f" first: {reservation_id} (seat 1, {day} 10:00–11:00)"
        " (times in Europe/Berlin)",
    }
    assert (
        await scene.resources.pool.fetchval("SELECT count(*) FROM coworking.closures")
        == 0
    )

    cancelled = await scene.api.request(
        "DELETE",
        f"/api/reservations/{reservation_id}",
        json={"reason": "Water damage"},
        headers=scene.admin.headers,
    )
    assert cancelled.status_code == 204, cancelled.text
    again = await scene.api.post(url, json=closure, headers=scene.admin.headers)
    assert again.status_code == 201, again.text

    await wait_for(lambda: _kinds(scene, reservation_id, "cancellation"))
    confirmation = _mail(smtp, "Your seat is booked: Lounge One")
    cancellation = _mail(smtp, "Your booking is cancelled: Lounge One")
    assert set(cancellation.keys()) == HEADERS
    assert len(cancellation.keys()) == len(HEADERS)
    assert cancellation["Message-ID"] == (
        f"<reservation-{reservation_id}.cancellation.v1@tlounge.local>"
    )
    assert cancellation["To"] == "Ada Lovelace <ada@example.com>"
    assert "Reason: Water damage" in cancellation.get_body().get_content()

    invite_method, invite = _calendar(confirmation)
    method, calendar = _calendar(cancellation)
    [invited] = invite.walk("VEVENT")
    [event] = calendar.walk("VEVENT")
    assert (invite_method, invite["METHOD"]) == ("PUBLISH", "PUBLISH")
    assert (method, calendar["METHOD"]) == ("CANCEL", "CANCEL")
    assert (
        str(event["UID"])
        == str(invited["UID"])
        == (f"reservation-{reservation_id}@tlounge.local")
    )
    assert (event["STATUS"], event.decoded("SEQUENCE")) == ("CANCELLED", 2)
    assert invited.decoded("SEQUENCE") == 1
    assert (
        str(event["ORGANIZER"])
        == str(invited["ORGANIZER"])
        == ("mailto:noreply@tlounge.local")
    )
    assert str(event["ATTENDEE"]) == "mailto:ada@example.com"
    assert "ATTENDEE" not in invited
    for name, instant in (("DTSTART", starts_at), ("DTEND", ends_at)):
        assert event[name].params["TZID"] == "Europe/Berlin"
        assert event.decoded(name) == instant
        assert event.decoded(name).utcoffset() == instant.astimezone(BERLIN).utcoffset()
    assert [str(zone["TZID"]) for zone in calendar.walk("VTIMEZONE")] == [
        "Europe/Berlin"
    ]


async def test_no_show_mail_cancels_the_event_it_had_confirmed(
    scene: Scene, smtp
) -> None:
    coworking = await create_coworking(
        scene.resources.pool, timezone="Europe/Berlin", checkin_grace_minutes=15
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=5, length_minutes=120)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    await wait_for(lambda: _kinds(scene, reservation_id, "confirmation"))

    await scene.sleep(
        starts_at + timedelta(minutes=15) - await scene.now() + timedelta(seconds=1)
    )

    await wait_for(lambda: _kinds(scene, reservation_id, "no_show"))
    method, calendar = _calendar(_mail(smtp, "We released your seat: Test Lounge"))
    [event] = calendar.walk("VEVENT")
    assert (method, event["STATUS"], event.decoded("SEQUENCE")) == (
        "CANCEL",
        "CANCELLED",
        2,
    )
    assert str(event["UID"]) == f"reservation-{reservation_id}@tlounge.local"
    # the slot as booked, not the part of it that was released
    assert (event.decoded("DTSTART"), event.decoded("DTEND")) == (starts_at, ends_at)


async def test_cancelled_hold_that_was_never_confirmed_carries_no_calendar(
    scene: Scene, smtp
) -> None:
    coworking = await create_coworking(scene.resources.pool, auto_confirm=False)
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]

    response = await scene.api.delete(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )

    assert response.status_code == 204
    await wait_for(lambda: _kinds(scene, reservation_id, "cancellation"))
    [mail] = [m.message for m in smtp.received]
    assert mail["Subject"] == "Your booking is cancelled: Test Lounge"
    assert list(mail.iter_attachments()) == []
    assert mail.get_content_type() == "text/plain"
    assert uuid.UUID(mail["X-TLounge-Reservation"]) == uuid.UUID(reservation_id)


@pytest.mark.parametrize(
    ("kind", "version", "invited", "expected"),
    [
        (pb.MAIL_KIND_CONFIRMATION, 1, 0, ("PUBLISH", 1, "CONFIRMED")),
        (pb.MAIL_KIND_RESCHEDULE, 3, 2, ("PUBLISH", 3, "CONFIRMED")),
        (pb.MAIL_KIND_CANCELLATION, 1, 1, ("CANCEL", 2, "CANCELLED")),
        # moved to version 3 and cancelled before that mail went out
        (pb.MAIL_KIND_CANCELLATION, 3, 2, ("CANCEL", 4, "CANCELLED")),
        (pb.MAIL_KIND_NO_SHOW, 2, 2, ("CANCEL", 3, "CANCELLED")),
        # a client moved a confirmed booking and staff let the move lapse
        (pb.MAIL_KIND_EXPIRED, 2, 1, ("CANCEL", 3, "CANCELLED")),
        # nothing was ever put in a calendar, so nothing is taken out
        (pb.MAIL_KIND_CANCELLATION, 1, 0, None),
        (pb.MAIL_KIND_EXPIRED, 1, 0, None),
        (pb.MAIL_KIND_REMINDER, 1, 1, None),
    ],
)
def test_which_mail_carries_which_calendar(
    kind: int, version: int, invited: int, expected: tuple | None
) -> None:
    # across the night Berlin leaves summer time: 01:00 CEST to 03:00 CET
    start = datetime(2026, 10, 24, 23, tzinfo=UTC)
    message = _built(kind, start, 3, version=version, invited=invited)
    parts = list(message.iter_attachments())
    if expected is None:
        assert parts == []
        return
    [part] = parts
    calendar = Calendar.from_ical(part.get_content())
    [event] = calendar.walk("VEVENT")
    assert (
        part.get_param("method"), event.decoded("SEQUENCE"), event["STATUS"]
    ) == expected  # fmt: skip
    assert calendar["METHOD"] == expected[0]
    assert str(event["UID"]) == "reservation-r-1@x.io"
    assert str(event["ORGANIZER"]) == "mailto:t@x.io"
    assert event["DTSTART"].to_ical() == b"20261025T010000"
    assert event["DTEND"].to_ical() == b"20261025T030000"
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"


@pytest.mark.parametrize(
    ("start_utc", "dtstart", "tzid"),
    [
        # 02:30 CEST, the first of the two 02:30s that night: a reader that
        # takes the change's onset an hour early reads it as CET
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), b"20261025T003000Z", False),
        # 02:30 CET, the second: read as local it would be the first, an hour early
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), b"20261025T013000Z", False),
        # an hour and more from the change, local time reads one way only
        (datetime(2026, 10, 25, 2, 30, tzinfo=UTC), b"20261025T033000", True),
        # 03:30 CEST, in the hour after the spring change: a reader that takes
        # its onset an hour late reads it as CET
        (datetime(2027, 3, 28, 1, 30, tzinfo=UTC), b"20270328T013000Z", False),
        (datetime(2027, 3, 28, 0, 30, tzinfo=UTC), b"20270328T003000Z", False),
        (datetime(2027, 3, 28, 2, 30, tzinfo=UTC), b"20270328T043000", True),
        # past the changes the zone definition lists, summer would read as winter
        (datetime(2040, 7, 2, 8, tzinfo=UTC), b"20400702T080000Z", False),
        (datetime(2037, 7, 2, 8, tzinfo=UTC), b"20370702T100000", True),
    ],
    ids=[
        "first-occurrence", "second-occurrence", "after-autumn-hour",
        "hour-after-spring", "hour-before-spring", "after-spring-hour",
        "past-the-definition", "inside-the-definition",
    ],
)  # fmt: skip
def test_a_start_near_a_clock_change_is_written_so_it_reads_once(
    start_utc: datetime, dtstart: bytes, tzid: bool
) -> None:
    message = _built(pb.MAIL_KIND_CONFIRMATION, start_utc, 2)
    [part] = list(message.iter_attachments())
    [event] = Calendar.from_ical(part.get_content()).walk("VEVENT")
    assert event["DTSTART"].to_ical() == dtstart
    assert ("TZID" in event["DTSTART"].params) is tzid
    assert event.decoded("DTSTART").astimezone(UTC) == start_utc


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_each_mail_defines_its_zone_once_before_the_event(zone: str) -> None:
    start = datetime(2027, 3, 10, 9, tzinfo=UTC)
    texts = []
    for kind in (pb.MAIL_KIND_CONFIRMATION, pb.MAIL_KIND_RESCHEDULE):
        message = _built(kind, start, 2, timezone=zone)
        [part] = list(message.iter_attachments())
        texts.append(part.get_content())
    for text in texts:
        lines = text.splitlines()
        assert lines.count("BEGIN:VTIMEZONE") == 1
        assert lines.index("END:VTIMEZONE") < lines.index("BEGIN:VEVENT")
        assert lines[lines.index("BEGIN:VTIMEZONE") + 1] == f"TZID:{zone}"
        calendar = Calendar.from_ical(text)
        [definition] = calendar.walk("VTIMEZONE")
        [event] = calendar.walk("VEVENT")
        # the definition read back gives the event the zone's own offset
        local = start.astimezone(ZoneInfo(zone))
        offset = definition.to_tz().utcoffset(local.replace(tzinfo=None))
        assert offset == local.utcoffset()
        assert event.decoded("DTSTART") == start
    # the second mail carries the same definition as the first
    assert texts[0].split("BEGIN:VEVENT")[0] == texts[1].split("BEGIN:VEVENT")[0]


@pytest.mark.parametrize(
    "zone",
    ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Almaty"],
)
def test_the_zone_definition_starts_each_clock_when_the_zone_changes(
    zone: str,
) -> None:
    message = _built(
        pb.MAIL_KIND_CONFIRMATION,
        datetime(2027, 3, 10, 9, tzinfo=UTC), 2, timezone=zone,
    )  # fmt: skip
    [part] = list(message.iter_attachments())
    [definition] = Calendar.from_ical(part.get_content()).walk("VTIMEZONE")
    tz = ZoneInfo(zone)
    changes = set()
    for clock in definition.subcomponents:
        was = clock.decoded("TZOFFSETFROM")
        now = clock.decoded("TZOFFSETTO")
        rdates = clock.get("RDATE", [])
        # one RDATE line is read as one list, several as a list of them
        rdates = rdates if isinstance(rdates, list) else [rdates]
        onsets = [clock.decoded("DTSTART")] + [
            listed.dt for rdate in rdates for listed in rdate.dts
        ]
        for local in onsets:
            # RFC 5545: an onset is read on the clock that runs up to it
            at = (local - was).replace(tzinfo=UTC)
            assert (at - timedelta(seconds=1)).astimezone(tz).utcoffset() == was
            assert at.astimezone(tz).utcoffset() == now
            assert clock.name == ("DAYLIGHT" if at.astimezone(tz).dst() else "STANDARD")
            changes.add(at)
    # every change the zone database knows from 1970 to 2038, and no other
    expected = {
        at
        for at, before, after in offset_changes(
            tz, datetime(1970, 1, 1, tzinfo=UTC), datetime(2038, 1, 1, tzinfo=UTC)
        )
    }
    assert changes - {datetime(1970, 1, 1, tzinfo=UTC)} == expected
    summer_2027 = datetime(2027, 6, 1, tzinfo=UTC)
    assert any(at.year == 2027 and at < summer_2027 for at in expected) is (
        zone != "Asia/Almaty"
    )


def test_the_changes_of_a_zone_are_found_to_the_second() -> None:
    berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
    year = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))

    assert [at for at, _, _ in offset_changes(berlin, *year)] == [
        datetime(2027, 3, 28, 1, tzinfo=UTC),
        datetime(2027, 10, 31, 1, tzinfo=UTC),
    ]
    assert [
        (at, before[0], after[0])
        for at, before, after in offset_changes(new_york, *year)
    ] == [
        (
            datetime(2027, 3, 14, 7, tzinfo=UTC),
            timedelta(hours=-5),
            timedelta(hours=-4),
        ),
        (
            datetime(2027, 11, 7, 6, tzinfo=UTC),
            timedelta(hours=-4),
            timedelta(hours=-5),
        ),
    ]


@pytest.mark.parametrize(
    ("timezone", "start", "subject"),
    [
        # a Sunday morning in Almaty, reminded a day ahead: not "today"
        ("Asia/Almaty", datetime(2026, 12, 6, 4, tzinfo=UTC), "Sun 06 Dec, 09:00"),
        # just after midnight in Berlin, reminded three hours ahead on Friday
        (
            "Europe/Berlin",
            datetime(2026, 12, 4, 23, 30, tzinfo=UTC),
            "Sat 05 Dec, 00:30",
        ),
    ],
)
def test_a_reminder_names_the_day_and_time_of_the_booking(
    timezone: str, start: datetime, subject: str
) -> None:
    message = _built(pb.MAIL_KIND_REMINDER, start, 1, timezone=timezone)
    assert message["Subject"] == f"Reminder: your seat on {subject}: Lounge One"


def test_a_calendar_with_letters_beyond_ascii_says_its_charset() -> None:
    context = MailContext(
        reservation_id="r-1", kind=pb.MAIL_KIND_CONFIRMATION, version=1,
        recipient_email="ada@example.com", recipient_name="Ада Лавлейс",
        coworking_name="Кофе ☕", coworking_address="Straße 1",
        timezone="Europe/Berlin", seat_number=3,
        starts_at=datetime(2099, 6, 1, 8, tzinfo=UTC),
        ends_at=datetime(2099, 6, 1, 9, tzinfo=UTC),
    )  # fmt: skip
    built = build_message(context, sender="T-Lounge <t@x.io>", domain="x.io")
    # as a mail program reads it: the bytes sent, parsed with the modern policy
    read = message_from_bytes(flatten_message(built), policy=policy.default)

    [part] = list(read.iter_attachments())
    assert (part.get_content_charset(), part.get_param("method")) == (
        "utf-8", "PUBLISH",
    )  # fmt: skip
    event = Calendar.from_ical(part.get_content()).walk("VEVENT")[0]
    assert str(event["summary"]) == "Seat 3 at Кофе ☕"
    assert str(event["location"]) == "Straße 1"
