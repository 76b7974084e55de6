from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from api.booking_rules import (
    Closure,
    CoworkingRules,
    SeatInfo,
    check_booking,
    grid_ceil,
    grid_floor,
    length_minutes,
    length_reads_two_ways,
    moved_end,
    on_grid,
    opening_intervals,
    parse_opening_hours,
    snap_to_grid,
    subtract,
    validate_timezone,
)
from api.errors import RuleViolation

BERLIN = ZoneInfo("Europe/Berlin")
COWORKING = uuid4()
WEEKDAY_HOURS = {
    day: [["08:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri")
}


def rules(**changes) -> CoworkingRules:
    base = CoworkingRules(
        id=COWORKING, timezone="Europe/Berlin", opening_hours=None, slot_minutes=15,
        min_duration_minutes=15, max_duration_minutes=720, max_days_ahead=60,
        max_active_per_client=10, auto_confirm=True, hold_minutes=30,
        reminder_lead_minutes=180, checkin_grace_minutes=None, active=True,
    )  # fmt: skip
    return replace(base, **changes)


SEAT = SeatInfo(
    id=uuid4(), coworking_id=COWORKING, number=7, kind="OpenSpace", capacity=1,
    internal_only=False, active=True,
)  # fmt: skip


def berlin(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BERLIN)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


NOW = utc(2026, 3, 20, 12)


def check(
    *, starts_at, ends_at, rules_=None, seat=SEAT, closures=(), internal=False, now=NOW
):
    check_booking(
        rules=rules_ or rules(), seat=seat, closures=list(closures),
        client_is_internal=internal, starts_at=starts_at, ends_at=ends_at, now=now,
    )  # fmt: skip


def refused(**kwargs) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        check(**kwargs)
    return caught.value


def test_check_booking_accepts_booking_inside_hours() -> None:
    check(starts_at=berlin(2026, 3, 23, 9), ends_at=berlin(2026, 3, 23, 10),
          rules_=rules(opening_hours=WEEKDAY_HOURS))  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "rule", "description"),
    [
        pytest.param(
            {"starts_at": berlin(2026, 3, 23, 10), "ends_at": berlin(2026, 3, 23, 9)},
            "end_before_start",
            "ends_at: 2026-03-23T09:00:00+01:00 is not after starts_at "
            "2026-03-23T10:00:00+01:00",
            id="end_before_start",
        ),
        pytest.param(
            {"starts_at": berlin(2026, 3, 19, 9), "ends_at": berlin(2026, 3, 19, 10)},
            "in_past", "starts_at: 2026-03-19T09:00:00+01:00 is in the past",
            id="in_past",
        ),
        pytest.param(
            {"starts_at": berlin(2026, 6, 1, 9), "ends_at": berlin(2026, 6, 1, 10)},
            "too_far_ahead",
            "starts_at: 2026-06-01T09:00:00+02:00 is more than 60 days ahead",
            id="too_far_ahead",
        ),
        pytest.param(
            {"starts_at": berlin(2026, 3, 23, 9, 5),
             "ends_at": berlin(2026, 3, 23, 10)},
            "off_grid",
            "starts_at: 2026-03-23T09:05:00+01:00 is off the 15-minute slot grid",
            id="off_grid_start",
        ),
        pytest.param(
            {"starts_at": berlin(2026, 3, 23, 9),
             "ends_at": berlin(2026, 3, 23, 10, 0, 30)},
            "off_grid",
            "ends_at: 2026-03-23T10:00:30+01:00 is off the 15-minute slot grid",
            id="off_grid_seconds",
        ),
        pytest.param(
            {"starts_at": berlin(2026, 3, 23, 9), "ends_at": berlin(2026, 3, 23, 22)},
            "too_long", "ends_at: 780 minutes is longer than the maximum of 720",
            id="too_long",
        ),
    ],
)  # fmt: skip
def test_check_booking_refuses_broken_rule(kwargs, rule: str, description: str) -> None:
    violation = refused(**kwargs)
    assert (violation.rule, violation.description) == (rule, description)
    assert violation.status_code == 400


def test_check_booking_refuses_too_short() -> None:
    violation = refused(starts_at=berlin(2026, 3, 23, 9),
                        ends_at=berlin(2026, 3, 23, 9, 15),
                        rules_=rules(min_duration_minutes=30))  # fmt: skip
    assert violation.rule == "too_short"
    assert (
        violation.description == "ends_at: 15 minutes is shorter than the minimum of 30"
    )


def test_check_booking_refuses_guest_on_employee_seat() -> None:
    staff_seat = replace(SEAT, internal_only=True)
    violation = refused(starts_at=berlin(2026, 3, 23, 9),
                        ends_at=berlin(2026, 3, 23, 10), seat=staff_seat)  # fmt: skip
    assert (violation.rule, violation.description) == (
        "internal_only",
        "seat_id: seat 7 is reserved for employees",
    )
    check(starts_at=berlin(2026, 3, 23, 9), ends_at=berlin(2026, 3, 23, 10),
          seat=staff_seat, internal=True)  # fmt: skip


def test_check_booking_refuses_inactive_seat_and_coworking() -> None:
    slot = {"starts_at": berlin(2026, 3, 23, 9), "ends_at": berlin(2026, 3, 23, 10)}
    assert refused(**slot, seat=replace(SEAT, active=False)).rule == "seat_inactive"
    assert (
        refused(**slot, seat=replace(SEAT, coworking_id=uuid4())).rule
        == "seat_inactive"
    )
    assert refused(**slot, rules_=rules(active=False)).rule == "coworking_inactive"


def test_check_booking_refuses_outside_opening_hours() -> None:
    violation = refused(starts_at=berlin(2026, 3, 23, 19),
                        ends_at=berlin(2026, 3, 23, 21),
                        rules_=rules(opening_hours=WEEKDAY_HOURS))  # fmt: skip
    assert violation.rule == "outside_opening_hours"
    weekend = refused(starts_at=berlin(2026, 3, 21, 9), ends_at=berlin(2026, 3, 21, 10),
                      rules_=rules(opening_hours=WEEKDAY_HOURS))  # fmt: skip
    assert weekend.rule == "outside_opening_hours"


def test_check_booking_accepts_across_midnight_in_overnight_hours() -> None:
    night = rules(opening_hours={"fri": [["22:00", "06:00"]]})
    check(
        starts_at=berlin(2026, 3, 27, 23), ends_at=berlin(2026, 3, 28, 5), rules_=night
    )
    late = refused(starts_at=berlin(2026, 3, 28, 5), ends_at=berlin(2026, 3, 28, 7),
                   rules_=night)  # fmt: skip
    assert late.rule == "outside_opening_hours"


def test_check_booking_refuses_closure_of_seat_or_coworking() -> None:
    slot = {"starts_at": berlin(2026, 3, 23, 9), "ends_at": berlin(2026, 3, 23, 10)}
    seat_closed = Closure(
        SEAT.id, berlin(2026, 3, 23, 9, 30), berlin(2026, 3, 23, 12), "paint"
    )
    violation = refused(**slot, closures=[seat_closed])
    assert (violation.rule, violation.description) == (
        "closure",
        "starts_at: seat 7 is closed from 2026-03-23T09:30:00+01:00 to "
        "2026-03-23T12:00:00+01:00 (paint)",
    )
    everyone = Closure(None, berlin(2026, 3, 23, 8), berlin(2026, 3, 23, 9, 15), "")
    assert refused(**slot, closures=[everyone]).rule == "closure"
    # another seat's closure, and one that ends exactly at the start, do not apply
    other = Closure(uuid4(), berlin(2026, 3, 23, 9), berlin(2026, 3, 23, 10), "")
    touching = Closure(None, berlin(2026, 3, 23, 8), berlin(2026, 3, 23, 9), "")
    check(**slot, closures=[other, touching])


def test_check_booking_dst_spring_forward_grid_and_duration() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 01:30-03:30 local lasts one hour
    starts, ends = berlin(2026, 3, 29, 1, 30), berlin(2026, 3, 29, 3, 30)
    check(
        starts_at=starts,
        ends_at=ends,
        rules_=rules(min_duration_minutes=60, max_duration_minutes=60),
    )
    # aware times of one zone subtract by wall clock; the real span is in UTC
    assert ends.astimezone(UTC) - starts.astimezone(UTC) == timedelta(hours=1)
    # with a 90-minute grid 01:30 and 03:00 are on it; 03:00 is the 180th wall minute
    ninety = rules(slot_minutes=90)
    check(
        starts_at=berlin(2026, 3, 29, 1, 30),
        ends_at=berlin(2026, 3, 29, 3),
        rules_=ninety,
    )
    assert refused(starts_at=berlin(2026, 3, 29, 1, 30),
                   ends_at=utc(2026, 3, 29, 1, 30),
                   rules_=ninety).rule == "off_grid"  # fmt: skip


def test_check_booking_dst_fall_back_repeated_hour() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:15 happens twice
    first, second = utc(2026, 10, 25, 0, 15), utc(2026, 10, 25, 1, 15)
    assert first.astimezone(BERLIN).strftime("%H:%M") == second.astimezone(
        BERLIN
    ).strftime("%H:%M")
    october = utc(2026, 10, 20)
    check(starts_at=first, ends_at=second, now=october)
    assert (
        refused(starts_at=first, ends_at=utc(2026, 10, 25, 1, 20), now=october).rule
        == "off_grid"
    )


# a coworking that rents whole local days, asked early in 2027
DAILY = rules(slot_minutes=1440, min_duration_minutes=1440, max_duration_minutes=1440,
              max_days_ahead=400)  # fmt: skip
EARLY_2027 = utc(2027, 1, 4)


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "hours"),
    [
        pytest.param(berlin(2027, 3, 28), berlin(2027, 3, 29), 23, id="spring"),
        pytest.param(berlin(2027, 10, 31), berlin(2027, 11, 1), 25, id="autumn"),
    ],
)
def test_check_booking_takes_a_whole_local_day_when_the_clocks_change(
    starts_at: datetime, ends_at: datetime, hours: int
) -> None:
    assert ends_at.astimezone(UTC) - starts_at.astimezone(UTC) == timedelta(hours=hours)
    check(starts_at=starts_at, ends_at=ends_at, rules_=DAILY, now=EARLY_2027)


def test_check_booking_lengths_across_a_clock_change_refuse_by_the_nearer_one() -> None:
    # two local days from the spring one: 2820 minutes elapsed, 2880 on the wall
    two_days = refused(starts_at=berlin(2027, 3, 28), ends_at=berlin(2027, 3, 30),
                       rules_=DAILY, now=EARLY_2027)  # fmt: skip
    assert (two_days.rule, two_days.description) == (
        "too_long", "ends_at: 2820 minutes is longer than the maximum of 1440",
    )  # fmt: skip
    # the autumn morning: 780 minutes elapsed, 720 on the wall
    halves = replace(DAILY, slot_minutes=720)
    morning = refused(starts_at=berlin(2027, 10, 31), ends_at=berlin(2027, 10, 31, 12),
                      rules_=halves, now=EARLY_2027)  # fmt: skip
    assert (morning.rule, morning.description) == (
        "too_short", "ends_at: 780 minutes is shorter than the minimum of 1440",
    )  # fmt: skip
    # an hour from the first 02:30 to the second is none on the wall
    first, second = utc(2027, 10, 31, 0, 30), utc(2027, 10, 31, 1, 30)
    assert first.astimezone(BERLIN).time() == second.astimezone(BERLIN).time()
    hourly = replace(DAILY, slot_minutes=30, min_duration_minutes=60,
                     max_duration_minutes=60)  # fmt: skip
    check(starts_at=first, ends_at=second, rules_=hourly, now=EARLY_2027)


def test_snap_to_grid_offers_the_short_spring_day_to_a_coworking_renting_days() -> None:
    day = (berlin(2027, 3, 28).astimezone(UTC), berlin(2027, 3, 29).astimezone(UTC))
    assert snap_to_grid(DAILY, [day], min_minutes=1440) == [day]


def test_check_booking_refuses_naive_times() -> None:
    with pytest.raises(TypeError, match="starts_at must be timezone-aware"):
        check(starts_at=datetime(2026, 3, 23, 9), ends_at=berlin(2026, 3, 23, 10))


def test_opening_intervals_dst_spring_forward_day() -> None:
    hours = rules(opening_hours={"sun": [["01:00", "05:00"]]})
    day = opening_intervals(hours, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    # 01:00 CET is 00:00Z; 05:00 CEST is 03:00Z: three real hours
    assert day == [(utc(2026, 3, 29, 0), utc(2026, 3, 29, 3))]


def test_opening_intervals_overnight_clipped_and_merged() -> None:
    hours = rules(timezone="UTC", opening_hours={
        "mon": [["22:00", "06:00"]], "tue": [["06:00", "09:00"], ["08:00", "10:00"]],
    })  # fmt: skip
    assert opening_intervals(hours, utc(2026, 3, 23, 23), utc(2026, 3, 24, 12)) == [
        (utc(2026, 3, 23, 23), utc(2026, 3, 24, 10))
    ]
    # the Monday night shows up from a window that starts on Tuesday
    assert opening_intervals(hours, utc(2026, 3, 24, 1), utc(2026, 3, 24, 2)) == [
        (utc(2026, 3, 24, 1), utc(2026, 3, 24, 2))
    ]
    assert opening_intervals(hours, utc(2026, 3, 24, 2), utc(2026, 3, 24, 2)) == []


def test_opening_intervals_round_the_clock_and_midnight_close() -> None:
    assert opening_intervals(rules(), utc(2026, 1, 1), utc(2026, 1, 2)) == [
        (utc(2026, 1, 1), utc(2026, 1, 2))
    ]
    all_day = rules(timezone="UTC", opening_hours={"thu": [["00:00", "24:00"]]})
    assert opening_intervals(all_day, utc(2026, 1, 1), utc(2026, 1, 3)) == [
        (utc(2026, 1, 1), utc(2026, 1, 2))
    ]


def test_grid_snapping_across_dst_gap() -> None:
    spring = rules(slot_minutes=15)
    # 01:50 CET snaps up over the missing hour to 03:00 CEST
    assert grid_ceil(spring, utc(2026, 3, 29, 0, 50)) == utc(2026, 3, 29, 1)
    assert grid_floor(spring, utc(2026, 3, 29, 1, 5)) == utc(2026, 3, 29, 1)
    assert on_grid(spring, utc(2026, 3, 29, 1)) and not on_grid(
        spring, utc(2026, 3, 29, 1, 5)
    )
    spans = snap_to_grid(
        spring, [(utc(2026, 3, 29, 0, 50), utc(2026, 3, 29, 1, 20))], min_minutes=15
    )
    assert spans == [(utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 15))]
    assert (
        snap_to_grid(spring, [(utc(2026, 3, 29, 1, 1), utc(2026, 3, 29, 1, 14))]) == []
    )


def test_subtract_cuts_holes_from_spans() -> None:
    spans = [
        (utc(2026, 1, 1, 8), utc(2026, 1, 1, 12)),
        (utc(2026, 1, 1, 14), utc(2026, 1, 1, 16)),
    ]
    holes = [
        (utc(2026, 1, 1, 9), utc(2026, 1, 1, 10)),
        (utc(2026, 1, 1, 11), utc(2026, 1, 1, 15)),
    ]
    assert subtract(spans, holes) == [
        (utc(2026, 1, 1, 8), utc(2026, 1, 1, 9)),
        (utc(2026, 1, 1, 10), utc(2026, 1, 1, 11)),
        (utc(2026, 1, 1, 15), utc(2026, 1, 1, 16)),
    ]


def test_from_row_parses_json_text_and_dict() -> None:
    row = {
        "id": COWORKING, "timezone": "UTC",
        "opening_hours": '{"mon": [["08:00", "18:00"]]}',
        "slot_minutes": 30, "min_duration_minutes": 30, "max_duration_minutes": 60,
        "max_days_ahead": 5, "max_active_per_client": 2, "auto_confirm": False,
        "hold_minutes": 10, "reminder_lead_minutes": 60, "checkin_grace_minutes": 15,
        "active": True,
    }  # fmt: skip
    parsed = CoworkingRules.from_row(row)
    assert parsed.opening_hours == {"mon": [["08:00", "18:00"]]}
    assert CoworkingRules.from_row(
        {**row, "opening_hours": {"tue": []}}
    ).opening_hours == {"tue": []}
    assert CoworkingRules.from_row({**row, "opening_hours": None}).opening_hours is None
    seat_row = {"id": SEAT.id, "coworking_id": COWORKING, "number": 7, "kind": "Room",
                "capacity": 6, "internal_only": True, "active": True,
                "cost": 5.0}  # fmt: skip
    assert SeatInfo.from_row(seat_row) == replace(
        SEAT, kind="Room", capacity=6, internal_only=True
    )


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"monday": []}, "'monday' is not a weekday"),
        ({"mon": "08-20"}, "mon: expected a list"),
        ({"mon": [["08:00"]]}, 'mon: each interval is ["HH:MM", "HH:MM"]'),
        ({"mon": [["8:00", "20:00"]]}, "mon: opening time '8:00' is not HH:MM"),
        ({"mon": [["08:00", "24:01"]]}, "mon: closing time '24:01' is not HH:MM"),
        ({"mon": [["08:00", "08:00"]]}, "mon: 08:00-08:00 is empty"),
        ({"mon": [["08:00", "13:00"], ["12:00", "18:00"]]},
         "mon 12:00-18:00 overlaps mon 08:00-13:00"),
        ({"tue": [["22:00", "06:00"]], "wed": [["05:00", "12:00"]]},
         "wed 05:00-12:00 overlaps tue 22:00-06:00"),
        ({"sun": [["22:00", "06:00"]], "mon": [["05:00", "12:00"]]},
         "mon 05:00-12:00 overlaps sun 22:00-06:00"),
    ],
)  # fmt: skip
def test_parse_opening_hours_refuses_bad_value(hours, message: str) -> None:
    with pytest.raises(
        ValueError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        parse_opening_hours(hours)


def test_validate_timezone_refuses_unknown_names() -> None:
    assert validate_timezone("Europe/Berlin") == "Europe/Berlin"
    for bad in ("Mars/Olympus", "", " UTC", "../../etc/passwd", "Europe",
                "America/Argentina"):  # fmt: skip
        with pytest.raises(ValueError, match="is not an IANA time zone"):
            validate_timezone(bad)
    for host_file in ("localtime", "posixrules", "Factory", "posix/UTC", "right/UTC"):
        with pytest.raises(ValueError, match="a file of the host's zone data"):
            validate_timezone(host_file)


def test_parse_opening_hours_takes_intervals_that_only_touch() -> None:
    hours = {
        "mon": [["08:00", "12:00"], ["12:00", "18:00"], ["22:00", "06:00"]],
        "tue": [["06:00", "24:00"]],
        "wed": [["00:00", "24:00"]],
        "sun": [["20:00", "00:00"]],
    }
    assert parse_opening_hours(hours) == hours


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "new_start", "new_end"),
    [
        # a whole local day moved onto the spring change still ends at midnight
        ("2027-03-20T00:00:00+01:00", "2027-03-21T00:00:00+01:00",
         "2027-03-28T00:00:00+01:00", "2027-03-29T00:00:00+02:00"),
        # and the 23-hour spring day moved onto an ordinary day is a day again
        ("2027-03-28T00:00:00+01:00", "2027-03-29T00:00:00+02:00",
         "2027-04-05T00:00:00+02:00", "2027-04-06T00:00:00+02:00"),
        # an hour the wall clock sees as none keeps its elapsed hour
        ("2027-10-31T02:30:00+02:00", "2027-10-31T02:30:00+01:00",
         "2027-11-02T09:00:00+01:00", "2027-11-02T10:00:00+01:00"),
        # half an hour moved to the second 02:00 of the autumn night ends at the
        # second 02:30, not the first
        ("2027-10-20T02:00:00+02:00", "2027-10-20T02:30:00+02:00",
         "2027-10-31T02:00:00+01:00", "2027-10-31T02:30:00+01:00"),
        ("2027-10-20T02:00:00+02:00", "2027-10-20T02:30:00+02:00",
         "2027-10-31T02:00:00+02:00", "2027-10-31T02:30:00+02:00"),
        # across the whole repeated hour, ends away from it: the wall clock's
        # length, which a move back gives back
        ("2027-10-20T01:30:00+02:00", "2027-10-20T03:00:00+02:00",
         "2027-10-31T01:30:00+02:00", "2027-10-31T03:00:00+01:00"),
        ("2027-10-31T01:30:00+02:00", "2027-10-31T03:00:00+01:00",
         "2027-11-07T01:30:00+01:00", "2027-11-07T03:00:00+01:00"),
        # nothing changes away from a clock change
        ("2027-06-01T09:00:00+02:00", "2027-06-01T11:30:00+02:00",
         "2027-06-03T14:00:00+02:00", "2027-06-03T16:30:00+02:00"),
        # two hours moved onto the spring night end past the gap, at 03:30
        ("2027-03-20T00:30:00+01:00", "2027-03-20T02:30:00+01:00",
         "2027-03-28T00:30:00+01:00", "2027-03-28T03:30:00+02:00"),
    ],
)  # fmt: skip
def test_moved_end_keeps_the_wall_clock_length(
    starts_at: str, ends_at: str, new_start: str, new_end: str
) -> None:
    end = moved_end(
        BERLIN,
        datetime.fromisoformat(starts_at),
        datetime.fromisoformat(ends_at),
        datetime.fromisoformat(new_start),
    )
    assert end == datetime.fromisoformat(new_end)
    assert end.utcoffset() is not None


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "new_start"),
    [
        # an hour moved to the first 02:30 of the autumn night: an hour on the
        # wall clock ends at 03:30, two hours later
        ("2027-10-31T01:30:00+02:00", "2027-10-31T02:30:00+02:00",
         "2027-10-31T02:30:00+02:00"),
        # an hour on the wall that lasted two, ending at the second 02:30
        ("2027-10-31T01:30:00+02:00", "2027-10-31T02:30:00+01:00",
         "2027-11-02T09:00:00+01:00"),
        # a span across the spring gap moved to end, on the wall, inside it
        ("2027-03-28T00:30:00+01:00", "2027-03-28T04:00:00+02:00",
         "2027-03-27T23:00:00+01:00"),
        # one across the autumn change moved to end inside the spring gap
        ("2027-10-31T01:00:00+02:00", "2027-10-31T03:00:00+01:00",
         "2027-03-28T00:30:00+01:00"),
    ],
)  # fmt: skip
def test_moved_end_is_none_where_the_repeated_hour_makes_the_length_read_two_ways(
    starts_at: str, ends_at: str, new_start: str
) -> None:
    end = moved_end(
        BERLIN,
        datetime.fromisoformat(starts_at),
        datetime.fromisoformat(ends_at),
        datetime.fromisoformat(new_start),
    )
    assert end is None


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "two_ways"),
    [
        # ends in the hour after the spring gap: 02:30 or 03:30 meant
        ("2027-03-28T00:30:00+01:00", "2027-03-28T03:30:00+02:00", True),
        ("2027-03-28T01:30:00+01:00", "2027-03-28T03:30:00+02:00", True),
        # a whole spring day ends far from the gap
        ("2027-03-28T00:00:00+01:00", "2027-03-29T00:00:00+02:00", False),
        ("2027-03-28T00:30:00+01:00", "2027-03-28T04:30:00+02:00", False),
        # the autumn change repeats an hour and skips none
        ("2027-10-31T01:30:00+02:00", "2027-10-31T02:30:00+01:00", False),
        ("2027-06-01T09:00:00+02:00", "2027-06-01T11:30:00+02:00", False),
    ],
)
def test_a_length_reads_two_ways_only_just_after_a_spring_gap(
    starts_at: str, ends_at: str, two_ways: bool
) -> None:
    assert (
        length_reads_two_ways(
            BERLIN, datetime.fromisoformat(starts_at), datetime.fromisoformat(ends_at)
        )
        is two_ways
    )


def test_opening_hours_that_fall_in_the_spring_gap_begin_and_end_at_the_jump() -> None:
    """On the night the clocks skip 02:00-03:00, a coworking that opens at
    02:30 is open from 03:00 CEST, and one that closes at 02:30 is closed
    from then: the clock passes 02:30 as it jumps."""
    opening = rules(opening_hours={"sun": [["02:30", "10:00"]]})
    closing = rules(opening_hours={"sat": [["20:00", "02:30"]]})
    jump = utc(2027, 3, 28, 1)
    assert jump.astimezone(BERLIN).hour == 3
    assert opening_intervals(opening, utc(2027, 3, 27, 12), utc(2027, 3, 29)) == [
        (jump, utc(2027, 3, 28, 8)),
    ]
    assert opening_intervals(closing, utc(2027, 3, 27, 12), utc(2027, 3, 29)) == [
        (utc(2027, 3, 27, 19), jump),
    ]
    week_before = utc(2027, 3, 21)
    check(
        starts_at=berlin(2027, 3, 28, 3), ends_at=berlin(2027, 3, 28, 4),
        rules_=opening, now=week_before,
    )  # fmt: skip
    late = refused(
        starts_at=berlin(2027, 3, 28, 3), ends_at=berlin(2027, 3, 28, 3, 30),
        rules_=closing, now=week_before,
    )  # fmt: skip
    assert late.rule == "outside_opening_hours"
    # Santiago's clocks skip midnight: 24:00 on the Saturday is 01:00 on Sunday
    santiago = rules(
        timezone="America/Santiago", opening_hours={"sat": [["18:00", "24:00"]]}
    )
    assert opening_intervals(santiago, utc(2027, 9, 4, 12), utc(2027, 9, 6)) == [
        (utc(2027, 9, 4, 22), utc(2027, 9, 5, 4)),
    ]


def test_a_day_whose_midnight_the_clocks_skip_is_still_a_day_on_the_grid() -> None:
    """Santiago goes from 23:59:59 on 2027-09-04 to 01:00 on 09-05 (tester J):
    a coworking renting whole days takes that Saturday and that Sunday."""
    days = rules(
        timezone="America/Santiago", slot_minutes=1440, min_duration_minutes=1440,
        max_duration_minutes=1440, max_days_ahead=30,
    )  # fmt: skip
    saturday, jump, monday = utc(2027, 9, 4, 4), utc(2027, 9, 5, 4), utc(2027, 9, 6, 3)
    assert jump.astimezone(days.zone).isoformat() == "2027-09-05T01:00:00-03:00"

    assert on_grid(days, jump)
    # the jump stands for the midnight it skipped: a day long on the wall clock
    assert length_minutes(days, saturday, jump) == (1440, 1440)
    assert length_minutes(days, jump, monday) == (1380, 1440)
    week_before = utc(2027, 8, 28)
    check(starts_at=saturday, ends_at=jump, rules_=days, now=week_before)
    check(starts_at=jump, ends_at=monday, rules_=days, now=week_before)
    assert grid_ceil(days, utc(2027, 9, 4, 12)) == jump
    assert grid_floor(days, utc(2027, 9, 5, 12)) == jump
    assert snap_to_grid(days, [(saturday, monday)], min_minutes=1440) == [
        (saturday, monday)
    ]

    # 01:00 on another day, or the jump on a grid that skipped nothing, is off it
    assert not on_grid(days, utc(2027, 9, 6, 4))
    hours = replace(days, slot_minutes=60, min_duration_minutes=60)
    assert on_grid(hours, jump) and length_minutes(hours, jump, monday) == (1380, 1380)
    berlin_days = replace(days, timezone="Europe/Berlin")
    assert not on_grid(berlin_days, utc(2027, 3, 28, 1))
    refusal = refused(starts_at=saturday, ends_at=jump + timedelta(minutes=1),
                      rules_=days, now=week_before)  # fmt: skip
    assert refusal.rule == "off_grid"


def test_a_day_from_a_skipped_midnight_moves_as_a_day() -> None:
    """A start alone moves a whole day onto, off and across Santiago's
    skipped midnight; it stays a day on the grid each time."""
    santiago = ZoneInfo("America/Santiago")
    saturday, jump, monday = utc(2027, 9, 4, 4), utc(2027, 9, 5, 4), utc(2027, 9, 6, 3)
    tuesday = utc(2027, 9, 7, 3)

    assert not length_reads_two_ways(santiago, saturday, jump, 1440)
    assert moved_end(santiago, saturday, jump, monday, 1440) == tuesday
    assert moved_end(santiago, jump, monday, monday, 1440) == tuesday
    assert moved_end(santiago, monday, tuesday, jump, 1440) == monday
    assert moved_end(santiago, monday, tuesday, saturday, 1440) == jump
    # without the grid, the end at the jump reads two ways, as before
    assert length_reads_two_ways(santiago, saturday, jump)


def test_a_booking_from_a_jump_counts_no_gap_it_did_not_last() -> None:
    """Tester L: on a 25-minute grid the jump stands for three skipped grid
    times; a booking from it to the next grid time is one step long, and a
    booking up to it as long as it lasts."""
    short = rules(
        timezone="America/Santiago", slot_minutes=25, min_duration_minutes=60,
        max_days_ahead=30,
    )  # fmt: skip
    jump = utc(2027, 9, 5, 4)
    week_before = utc(2027, 8, 29)
    assert length_minutes(short, jump, jump + timedelta(minutes=15)) == (15, 25)
    refusal = refused(starts_at=jump, ends_at=jump + timedelta(minutes=15),
                      rules_=short, now=week_before)  # fmt: skip
    assert refusal.rule == "too_short"
    before = utc(2027, 9, 5, 3, 20)  # 23:20 on the 4th
    assert length_minutes(short, before, jump) == (40, 40)
    berlin_short = replace(short, timezone="Europe/Berlin", max_days_ahead=200)
    berlin_jump = utc(2027, 3, 28, 1)  # 03:00 CEST
    assert length_minutes(
        berlin_short, berlin_jump, berlin_jump + timedelta(minutes=20)
    ) == (20, 25)
    assert (
        refused(
            starts_at=berlin_jump,
            ends_at=berlin_jump + timedelta(minutes=20),
            rules_=berlin_short,
            now=utc(2027, 3, 20),
        ).rule  # fmt: skip
        == "too_short"
    )


def test_a_day_moves_onto_the_day_before_a_skipped_midnight_by_its_start() -> None:
    """Tester L: the wall reading ends at the skipped midnight, the jump on
    the grid; the elapsed one at 23:00, off it. Only one can be meant."""
    santiago = ZoneInfo("America/Santiago")
    saturday, jump, monday = utc(2027, 9, 4, 4), utc(2027, 9, 5, 4), utc(2027, 9, 6, 3)
    tuesday = utc(2027, 9, 7, 3)
    assert moved_end(santiago, jump, monday, saturday, 1440) == jump
    assert moved_end(santiago, jump, tuesday, utc(2027, 9, 3, 4), 1440) == jump
    # where the skipped wall end falls where the elapsed one does, as before:
    # 00:30 to 02:30 moved onto the spring night ends at 03:30
    berlin = ZoneInfo("Europe/Berlin")
    two_hours = (utc(2027, 3, 26, 23, 30), utc(2027, 3, 27, 1, 30))
    assert moved_end(berlin, *two_hours, utc(2027, 3, 27, 23, 30), 30) == utc(
        2027, 3, 28, 1, 30
    )
