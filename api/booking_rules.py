"""A coworking's booking rules, as pure functions over plain values.

No I/O and no clock: the caller passes `now`, the rows and the closures, so
the reservation activity can call this inside its claim transaction and the
outcome is the same on every retry.

Instants are timezone-aware and compared in UTC. Local time matters for four
things only: opening hours, the slot grid (local midnight plus whole steps of
wall-clock time, so 09:00 stays on the grid across a daylight-saving change),
a booking's length (a local day is a day, though it lasts 23 or 25 hours) and
the text people read in an error.
"""

from __future__ import annotations

import itertools
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from api.errors import RuleViolation

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_INTERVALS_PER_DAY = 6
HHMM_PATTERN = r"^([01]\d|2[0-3]):([0-5]\d)$"
_HHMM = re.compile(HHMM_PATTERN)

OpeningHours = dict[str, list[list[str]]]
Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class CoworkingRules:
    id: UUID
    timezone: str
    opening_hours: OpeningHours | None
    slot_minutes: int
    min_duration_minutes: int
    max_duration_minutes: int
    max_days_ahead: int
    max_active_per_client: int
    auto_confirm: bool
    hold_minutes: int
    reminder_lead_minutes: int
    checkin_grace_minutes: int | None
    active: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CoworkingRules:
        hours = row["opening_hours"]
        # asyncpg hands jsonb over as text unless the connection has a codec
        if isinstance(hours, str | bytes):
            hours = json.loads(hours)
        return cls(
            id=row["id"],
            timezone=row["timezone"],
            opening_hours=hours,
            slot_minutes=row["slot_minutes"],
            min_duration_minutes=row["min_duration_minutes"],
            max_duration_minutes=row["max_duration_minutes"],
            max_days_ahead=row["max_days_ahead"],
            max_active_per_client=row["max_active_per_client"],
            auto_confirm=row["auto_confirm"],
            hold_minutes=row["hold_minutes"],
            reminder_lead_minutes=row["reminder_lead_minutes"],
            checkin_grace_minutes=row["checkin_grace_minutes"],
            active=row["active"],
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class SeatInfo:
    id: UUID
    coworking_id: UUID
    number: int
    kind: str
    capacity: int
    internal_only: bool
    active: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, prefix: str = "") -> SeatInfo:
        """`prefix` names the columns in a row that also holds other tables'."""
        return cls(
            id=row[f"{prefix}id"],
            coworking_id=row[f"{prefix}coworking_id"],
            number=row[f"{prefix}number"],
            kind=row[f"{prefix}kind"],
            capacity=row[f"{prefix}capacity"],
            internal_only=row[f"{prefix}internal_only"],
            active=row[f"{prefix}active"],
        )


@dataclass(frozen=True)
class Closure:
    seat_id: UUID | None
    starts_at: datetime
    ends_at: datetime
    reason: str


# Files of a host's zone folder that name no place: each reads the host's own
# settings or a variant of the data, so two hosts could disagree on the hours.
_HOST_FILES = frozenset({"localtime", "posixrules", "Factory"})
_HOST_FOLDERS = ("posix/", "right/")


def validate_timezone(name: str) -> str:
    """The IANA name itself, or ValueError saying why it is not one."""
    if not name or len(name) > 64 or name != name.strip():
        raise ValueError(f"{name!r} is not an IANA time zone")
    if name in _HOST_FILES or name.startswith(_HOST_FOLDERS):
        raise ValueError(
            f"{name!r} is a file of the host's zone data, not a place's time zone"
        )
    try:
        ZoneInfo(name)
    # a folder of the zone data (Europe, America/Argentina) is an OSError
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not an IANA time zone") from None
    return name


def parse_opening_hours(value: Mapping[str, Any]) -> OpeningHours:
    """Checked opening hours, or ValueError naming the day and the fault.

    A day that is missing is closed. An interval whose close is not after its
    open runs past midnight (22:00-06:00 closes at 06:00 the next day); a
    close of 24:00 means midnight at the end of the day.
    """
    parsed: OpeningHours = {}
    for day, intervals in value.items():
        if day not in WEEKDAYS:
            raise ValueError(f"{day!r} is not a weekday; use {', '.join(WEEKDAYS)}")
        if not isinstance(intervals, list) or len(intervals) > MAX_INTERVALS_PER_DAY:
            raise ValueError(
                f"{day}: expected a list of at most {MAX_INTERVALS_PER_DAY} intervals"
            )
        checked = []
        for interval in intervals:
            if not isinstance(interval, list | tuple) or len(interval) != 2:
                raise ValueError(f'{day}: each interval is ["HH:MM", "HH:MM"]')
            opens, closes = interval
            if not isinstance(opens, str) or not _HHMM.match(opens):
                raise ValueError(f"{day}: opening time {opens!r} is not HH:MM")
            if not isinstance(closes, str) or not (
                _HHMM.match(closes) or closes == "24:00"
            ):
                raise ValueError(f"{day}: closing time {closes!r} is not HH:MM")
            if opens == closes:
                raise ValueError(
                    f"{day}: {opens}-{closes} is empty; use 00:00-24:00 for all day"
                )
            checked.append([opens, closes])
        parsed[day] = checked
    _refuse_overlaps(parsed)
    return parsed


_WEEK_MINUTES = 7 * 24 * 60


def _refuse_overlaps(hours: OpeningHours) -> None:
    """Two intervals that share a minute say the same hours twice, one of them
    wrongly; an overnight one may reach into the next day's, Sunday's into
    Monday's."""
    spans = []
    for index, day in enumerate(WEEKDAYS):
        for opens, closes in hours.get(day, []):
            start = index * 24 * 60 + _minutes(opens)
            length = (_minutes(closes) - _minutes(opens)) % (24 * 60) or 24 * 60
            spans.append((start, start + length, f"{day} {opens}-{closes}"))
    if not spans:
        return
    spans.sort()
    # the week wraps: Monday's first interval comes again after Sunday's last
    first = spans[0]
    spans.append((first[0] + _WEEK_MINUTES, first[1] + _WEEK_MINUTES, first[2]))
    for (_, end, earlier), (start, _, later) in itertools.pairwise(spans):
        if end > start:
            raise ValueError(f"{later} overlaps {earlier}")


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _at(zone: ZoneInfo, day: date, clock: str) -> datetime:
    """The UTC instant at which the local clock first reads `clock` or later.

    A wall time inside a spring-forward gap is never shown: the clock passes
    it as it jumps, so a coworking that opens (or closes) at 02:30 on that
    night opens (or closes) at the jump, not an hour after it.
    """
    if clock == "24:00":
        wall = datetime.combine(day + timedelta(days=1), time(0))
    else:
        wall = datetime.combine(day, _clock(clock))
    return _first_shown(zone, wall)


def _first_shown(zone: ZoneInfo, wall: datetime) -> datetime:
    """The UTC instant at which the local clock first reads `wall` or later."""
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # In the gap the offset after the jump lands before it, the one before
    # lands after it; the jump, a whole second, lies in between.
    low = int(wall.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    high = int(instant.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        shown = datetime.fromtimestamp(middle, zone).replace(tzinfo=None)
        low, high = (low, middle) if shown >= wall else (middle, high)
    return datetime.fromtimestamp(high, UTC)


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def opening_intervals(
    rules: CoworkingRules, start: datetime, end: datetime
) -> list[Interval]:
    """When the coworking is open within [start, end): UTC, merged, clipped."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return []
    if rules.opening_hours is None:
        return [(start, end)]
    zone = rules.zone
    # the day before too: its overnight hours reach into the first day
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    found: list[Interval] = []
    while day <= last:
        for opens, closes in rules.opening_hours.get(WEEKDAYS[day.weekday()], []):
            begin = _at(zone, day, opens)
            overnight = closes != "24:00" and closes <= opens
            finish = _at(zone, day + timedelta(days=1) if overnight else day, closes)
            begin, finish = max(begin, start), min(finish, end)
            if begin < finish:
                found.append((begin, finish))
        day += timedelta(days=1)
    return _merge(found)


@lru_cache(maxsize=4096)
def _day_grid(day: date, timezone: str, slot_minutes: int) -> tuple[datetime, ...]:
    """Every real instant of one local day whose wall time is on the grid."""
    zone = ZoneInfo(timezone)
    midnight = datetime.combine(day, time(0))
    points = set()
    for step in range(0, 24 * 60, slot_minutes):
        wall = midnight + timedelta(minutes=step)
        for fold in (0, 1):
            instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
            if instant.astimezone(zone).replace(tzinfo=None) == wall:
                points.add(instant)
            else:
                # skipped by a spring-forward jump: the grid point is the jump,
                # as an opening time there is, so no day is left without one
                points.add(_first_shown(zone, wall))
    return tuple(sorted(points))


def _on_wall_grid(wall: datetime, slot_minutes: int) -> bool:
    return (wall.hour * 60 + wall.minute) % slot_minutes == 0


def grid_wall(
    rules: CoworkingRules, instant: datetime, *, starts: bool = False
) -> datetime:
    """The wall time `instant` stands for on the grid: the clock's own, except
    at a spring-forward jump that skipped grid times, where it stands for one
    of them (Santiago's midnight of 2027-09-05 is shown as 01:00).

    An end there stands for the first time skipped and a start for the last,
    so a booking's length on the wall clock never counts a gap it did not
    last: from the jump to the next grid time is one step, not the gap's.
    """
    return _grid_wall(rules.zone, rules.slot_minutes, instant, starts=starts)


def _grid_wall(
    zone: ZoneInfo, slot_minutes: int, instant: datetime, *, starts: bool = False
) -> datetime:
    local = instant.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if _on_wall_grid(wall, slot_minutes) or local.second or local.microsecond:
        return wall
    before = (instant - timedelta(seconds=1)).astimezone(zone)
    jump = (local.utcoffset() or timedelta(0)) - (before.utcoffset() or timedelta(0))
    minute = timedelta(minutes=1)
    skipped = [
        wall - jump + step * minute
        for step in range(int(jump / minute))
        if _on_wall_grid(wall - jump + step * minute, slot_minutes)
    ]
    if not skipped:
        return wall
    return skipped[-1] if starts else skipped[0]


def on_grid(rules: CoworkingRules, instant: datetime) -> bool:
    return _on_grid_at(rules.zone, rules.slot_minutes, instant)


def _on_grid_at(zone: ZoneInfo, slot_minutes: int, instant: datetime) -> bool:
    local = instant.astimezone(zone)
    if local.second or local.microsecond:
        return False
    return _on_wall_grid(local, slot_minutes) or _on_wall_grid(
        _grid_wall(zone, slot_minutes, instant), slot_minutes
    )


def _grid_around(rules: CoworkingRules, instant: datetime) -> tuple[datetime, ...]:
    day = instant.astimezone(rules.zone).date()
    return tuple(
        point
        for offset in (-1, 0, 1)
        for point in _day_grid(
            day + timedelta(days=offset), rules.timezone, rules.slot_minutes
        )
    )


def grid_ceil(rules: CoworkingRules, instant: datetime) -> datetime:
    """The first grid instant at or after `instant`."""
    points = _grid_around(rules, instant)
    return points[bisect_left(points, instant.astimezone(UTC))]


def grid_floor(rules: CoworkingRules, instant: datetime) -> datetime:
    """The last grid instant at or before `instant`."""
    points = _grid_around(rules, instant)
    return points[bisect_right(points, instant.astimezone(UTC)) - 1]


def _local(rules: CoworkingRules, instant: datetime) -> str:
    return instant.astimezone(rules.zone).isoformat()


def length_minutes(
    rules: CoworkingRules, starts_at: datetime, ends_at: datetime
) -> tuple[float, float]:
    """Minutes from start to end: elapsed, then on the coworking's wall clock.

    They differ only across a daylight-saving change: 00:00 to 00:00 on the
    day clocks go forward is 1380 and 1440; an hour from 02:30 to the second
    02:30 when they go back is 60 and 0. The wall clock reads a grid point
    that a jump skipped as the time it stands for (`grid_wall`).
    """
    elapsed = ends_at.astimezone(UTC) - starts_at.astimezone(UTC)
    wall = grid_wall(rules, ends_at) - grid_wall(rules, starts_at, starts=True)
    minute = timedelta(minutes=1)
    return elapsed / minute, wall / minute


def _exists(zone: ZoneInfo, wall_time: datetime) -> bool:
    """Whether the zone's clocks ever show this naive local time."""
    there_and_back = wall_time.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)
    return there_and_back.replace(tzinfo=None) == wall_time


def length_reads_two_ways(
    zone: ZoneInfo, starts_at: datetime, ends_at: datetime, slot_minutes: int = 1
) -> bool:
    """Whether the booking ends within a spring gap's width after the gap, so
    that its length on the wall clock may be meant or may be the gap's doing.

    00:30 to 03:30 on the spring night is three hours on the clock, or two
    hours that were moved there from 00:30 to 02:30 (02:30 does not exist,
    so the end became 03:30). Moved on with its length kept, one reading
    grows the booking by the gap and the other shrinks it.
    """
    old_start, old_end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    if _grid_wall(zone, slot_minutes, ends_at) != old_end.replace(tzinfo=None):
        # the end is a jump the grid reads as the time it skipped: one way
        return False
    shift = (old_end.utcoffset() or timedelta(0)) - (
        old_start.utcoffset() or timedelta(0)
    )
    return shift > timedelta(0) and not _exists(
        zone, old_end.replace(tzinfo=None) - shift
    )


def _repeated(zone: ZoneInfo, wall_time: datetime) -> bool:
    """Whether the zone's clocks show this naive local time twice (autumn)."""
    first = wall_time.replace(tzinfo=zone, fold=0).utcoffset()
    return first != wall_time.replace(tzinfo=zone, fold=1).utcoffset() and _exists(
        zone, wall_time
    )


def moved_end(
    zone: ZoneInfo,
    starts_at: datetime,
    ends_at: datetime,
    new_start: datetime,
    slot_minutes: int = 1,
) -> datetime | None:
    """The end of a booking moved to `new_start` with its length kept, or None
    when that length reads two ways.

    The length is kept as the coworking's wall clock shows it, so a day moved
    onto the day the clocks change still ends at midnight; one that the wall
    clock sees as nothing (an hour across the autumn change) keeps its elapsed
    length instead. Where the wall clock and the elapsed time give different
    ends and the old or the new booking starts or ends in the hour the clocks
    repeat, or would end in the hour they skip, either could be meant (the
    first 02:30 plus an hour on the wall is two hours), and a guess would
    grow or shrink the booking on every move.
    """
    by_elapsed = (new_start + (ends_at - starts_at)).astimezone(UTC)
    old_start, old_end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    # on the grid, the length of a day that began at a skipped midnight is a day
    wall = _grid_wall(zone, slot_minutes, ends_at) - _grid_wall(
        zone, slot_minutes, starts_at, starts=True
    )
    if wall <= timedelta(0):
        return by_elapsed
    local_start = new_start.astimezone(zone)
    # the fold says which of an autumn night's two 02:30s the start is; an end
    # in that repeated hour is the same one
    local_end = (_grid_wall(zone, slot_minutes, new_start, starts=True) + wall).replace(
        tzinfo=zone, fold=local_start.fold
    )
    if local_end <= new_start:
        return by_elapsed
    # in UTC: an instant in the fold never compares equal across zones (PEP 495)
    by_wall = local_end.astimezone(UTC)
    walls = (old_start, old_end, local_start, local_end)
    skipped_end = not _exists(zone, local_end.replace(tzinfo=None))
    if by_wall != by_elapsed and (
        any(_repeated(zone, at.replace(tzinfo=None)) for at in walls)
        # an end on the wall clock that the spring night skips
        or skipped_end
    ):
        # the grid takes a skipped time at the jump; where only one reading
        # lands on the grid, it is the one meant
        if skipped_end:
            by_wall = _first_shown(zone, local_end.replace(tzinfo=None))
        meant = [
            at for at in (by_wall, by_elapsed) if _on_grid_at(zone, slot_minutes, at)
        ]
        return meant[0] if len(meant) == 1 else None
    return by_wall


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"{name} must be timezone-aware")


def check_booking(
    *,
    rules: CoworkingRules,
    seat: SeatInfo,
    closures: Sequence[Closure],
    client_is_internal: bool,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    shrink: bool = False,
) -> None:
    """Refuse a booking that breaks one of the coworking's rules.

    Raises RuleViolation naming the first rule broken; returns None when the
    booking may go ahead. Whether the seat is free is not asked here: that is
    the claim's unique key. A `shrink` (a move inside what the reservation
    holds on its seat) takes no new time, so the rules about new bookings
    (an open seat, its opening hours, employees only, how far ahead) are not
    asked of it: a booking made before they changed may still be shortened.
    """
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at), ("now", now)):
        _require_aware(name, value)
    # Python compares and subtracts two times of one zone by wall clock, which
    # is wrong across a daylight-saving change; in UTC it is elapsed time
    starts_at, ends_at, now = (t.astimezone(UTC) for t in (starts_at, ends_at, now))

    if ends_at <= starts_at:
        raise RuleViolation(
            "end_before_start",
            f"ends_at: {_local(rules, ends_at)} is not after starts_at "
            f"{_local(rules, starts_at)}",
        )
    if not rules.active and not shrink:
        raise RuleViolation(
            "coworking_inactive", "seat_id: the coworking takes no bookings"
        )
    if not shrink and (not seat.active or seat.coworking_id != rules.id):
        raise RuleViolation(
            "seat_inactive", f"seat_id: seat {seat.number} takes no bookings"
        )
    if seat.internal_only and not client_is_internal and not shrink:
        raise RuleViolation(
            "internal_only", f"seat_id: seat {seat.number} is reserved for employees"
        )
    if starts_at < now:
        raise RuleViolation(
            "in_past", f"starts_at: {_local(rules, starts_at)} is in the past"
        )
    if starts_at > now + timedelta(days=rules.max_days_ahead) and not shrink:
        raise RuleViolation(
            "too_far_ahead",
            f"starts_at: {_local(rules, starts_at)} is more than "
            f"{rules.max_days_ahead} days ahead",
        )
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if not on_grid(rules, value):
            raise RuleViolation(
                "off_grid",
                f"{name}: {_local(rules, value)} is off the "
                f"{rules.slot_minutes}-minute slot grid",
            )

    # the grid runs on the wall clock, the hours used on elapsed time: either passes
    lengths = length_minutes(rules, starts_at, ends_at)
    if max(lengths) < rules.min_duration_minutes:
        raise RuleViolation(
            "too_short",
            f"ends_at: {max(lengths):g} minutes is shorter than the minimum of "
            f"{rules.min_duration_minutes}",
        )
    if min(lengths) > rules.max_duration_minutes:
        raise RuleViolation(
            "too_long",
            f"ends_at: {min(lengths):g} minutes is longer than the maximum of "
            f"{rules.max_duration_minutes}",
        )

    if not shrink and opening_intervals(rules, starts_at, ends_at) != [
        (starts_at, ends_at)
    ]:
        raise RuleViolation(
            "outside_opening_hours",
            f"starts_at: {_local(rules, starts_at)} to {_local(rules, ends_at)} "
            "is not entirely within opening hours",
        )
    for closure in closures:
        applies = closure.seat_id is None or closure.seat_id == seat.id
        begins, ends = (
            closure.starts_at.astimezone(UTC),
            closure.ends_at.astimezone(UTC),
        )
        if applies and begins < ends_at and ends > starts_at:
            what = "the coworking" if closure.seat_id is None else f"seat {seat.number}"
            because = f" ({closure.reason})" if closure.reason else ""
            raise RuleViolation(
                "closure",
                f"starts_at: {what} is closed from {_local(rules, closure.starts_at)} "
                f"to {_local(rules, closure.ends_at)}{because}",
            )


def subtract(spans: list[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """The parts of sorted, disjoint `spans` not covered by any hole."""
    result: list[Interval] = []
    ordered = sorted(holes)
    for start, end in spans:
        cursor = start
        for hole_start, hole_end in ordered:
            if hole_end <= cursor or hole_start >= end:
                continue
            if hole_start > cursor:
                result.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def snap_to_grid(
    rules: CoworkingRules, spans: Sequence[Interval], *, min_minutes: int = 0
) -> list[Interval]:
    """Each span shrunk to whole grid steps, dropped if shorter than `min_minutes`."""
    snapped = []
    for start, end in spans:
        begin, finish = grid_ceil(rules, start), grid_floor(rules, end)
        # offered where check_booking takes it: long enough by either length
        if finish > begin and max(length_minutes(rules, begin, finish)) >= min_minutes:
            snapped.append((begin, finish))
    return snapped
