from datetime import UTC, datetime, timedelta, timezone

import pytest

from workflows.local_time import local_time


@pytest.mark.parametrize(
    ("instant", "zone", "text"),
    [
        # winter and summer on either side of Berlin's spring change
        (datetime(2027, 3, 28, 0, 30, tzinfo=UTC), "Europe/Berlin",
         "Sun 28 Mar 2027 01:30 CET (00:30 UTC)"),
        (datetime(2027, 3, 28, 1, 30, tzinfo=UTC), "Europe/Berlin",
         "Sun 28 Mar 2027 03:30 CEST (01:30 UTC)"),
        # an instant given in another offset is still told in UTC
        (datetime(2027, 1, 5, 9, tzinfo=timezone(timedelta(hours=-5))),
         "America/New_York", "Tue 05 Jan 2027 09:00 EST (14:00 UTC)"),
        # a coworking on UTC is not told its clock twice; London's GMT still is
        (datetime(2027, 1, 5, 6, tzinfo=UTC), "UTC", "Tue 05 Jan 2027 06:00 UTC"),
        (datetime(2027, 1, 5, 6, tzinfo=UTC), "Europe/London",
         "Tue 05 Jan 2027 06:00 GMT (06:00 UTC)"),
    ],
)  # fmt: skip
def test_an_instant_reads_as_the_coworkings_clock(
    instant: datetime, zone: str, text: str
) -> None:
    assert local_time(instant, zone) == text


@pytest.mark.parametrize("zone", ["", "Nowhere/Atlantis", "../../etc/passwd"])
def test_a_zone_that_cannot_be_read_gives_the_instant_itself(zone: str) -> None:
    instant = datetime(2027, 1, 5, 6, tzinfo=UTC)
    assert local_time(instant, zone) == "2027-01-05T06:00:00+00:00"


def test_local_iso_gives_the_zone_offset_and_utc_for_an_unknown_zone() -> None:
    from workflows.local_time import local_iso

    instant = datetime(2027, 7, 1, 8, 30, tzinfo=UTC)
    assert local_iso(instant, "Europe/Berlin") == "2027-07-01T10:30:00+02:00"
    assert local_iso(instant, "Mars/Olympus") == "2027-07-01T08:30:00+00:00"


BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "text"),
    [
        (datetime(2027, 1, 5, 8, tzinfo=UTC), datetime(2027, 1, 5, 9, tzinfo=UTC),
         "Tue 05 Jan 2027 09:00–10:00 CET"),
        # an hour across the autumn change: 02:30 summer time to 02:30 winter time
        (datetime(2027, 10, 31, 0, 30, tzinfo=UTC),
         datetime(2027, 10, 31, 1, 30, tzinfo=UTC),
         "Sun 31 Oct 2027 02:30 CEST–02:30 CET"),
        # over midnight and the spring change
        (datetime(2027, 3, 27, 21, tzinfo=UTC),
         datetime(2027, 3, 28, 1, 30, tzinfo=UTC),
         "Sat 27 Mar 2027 22:00 CET – Sun 28 Mar 2027 03:30 CEST"),
        # a whole local day ends at the next midnight
        (datetime(2027, 3, 29, 22, tzinfo=UTC), datetime(2027, 3, 30, 22, tzinfo=UTC),
         "Tue 30 Mar 2027 00:00 CEST – Wed 31 Mar 2027 00:00 CEST"),
    ],
)  # fmt: skip
def test_a_span_names_the_ends_date_and_zone_where_they_differ(
    starts_at: datetime, ends_at: datetime, text: str
) -> None:
    from workflows.local_time import local_span

    assert local_span(starts_at, ends_at, BERLIN) == text


def test_a_span_in_an_unknown_zone_gives_both_instants() -> None:
    from workflows.local_time import local_span

    starts_at = datetime(2027, 1, 5, 8, tzinfo=UTC)
    assert local_span(starts_at, starts_at + timedelta(hours=1), "Mars/Olympus") == (
        "2027-01-05T08:00:00+00:00–2027-01-05T09:00:00+00:00"
    )
