"""Instants as a coworking's clock shows them, for what support staff read.

The reservation workflow imports this module passed through its sandbox: the
sandbox's own zoneinfo hands out wrapped zones, which datetime refuses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def local_time(instant: datetime, timezone: str) -> str:
    """'Tue 05 Jan 2027 07:00 CET (06:00 UTC)'; the ISO instant for a bad zone."""
    try:
        local = instant.astimezone(ZoneInfo(timezone))
    except (ValueError, ZoneInfoNotFoundError):
        return instant.isoformat()
    shown = f"{local:%a %d %b %Y %H:%M} {local.tzname()}"
    if local.tzname() == "UTC":
        return shown
    return f"{shown} ({instant.astimezone(UTC):%H:%M} UTC)"


def local_iso(instant: datetime, timezone: str) -> str:
    """RFC 3339 with the coworking's offset, as the booking rules word instants."""
    try:
        return instant.astimezone(ZoneInfo(timezone)).isoformat()
    except (ValueError, ZoneInfoNotFoundError):
        return instant.isoformat()


def local_span(starts_at: datetime, ends_at: datetime, timezone: str) -> str:
    """'Tue 05 Jan 2027 09:00–10:00 CET'; the end names its own date and zone
    where they are not the start's: a booking over midnight or a clock change."""
    try:
        zone = ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        return f"{starts_at.isoformat()}–{ends_at.isoformat()}"
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    begins = f"{start:%a %d %b %Y %H:%M}"
    if end.date() != start.date():
        return f"{begins} {start.tzname()} – {end:%a %d %b %Y %H:%M} {end.tzname()}"
    if end.tzname() != start.tzname():
        return f"{begins} {start.tzname()}–{end:%H:%M} {end.tzname()}"
    return f"{begins}–{end:%H:%M} {start.tzname()}"
