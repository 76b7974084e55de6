from datetime import UTC, datetime
from typing import Annotated

import pytest
from pydantic import BaseModel, ValidationError

from api.models.common import BookingInstant, EmailAddress, SafeText, email_key


class Label(BaseModel):
    text: Annotated[str, SafeText(min_length=1, max_length=5)]


class Address(BaseModel):
    email: EmailAddress


class Slot(BaseModel):
    starts_at: BookingInstant


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("  Desk ", "Desk"),
        ("Cafe\u0301", "Café"),  # NFC: five code points become four
        ("Мила", "Мила"),
        ("می\u200cخواهم"[:5], "می\u200cخو"),  # the zero-width non-joiner is kept
    ],
    ids=["stripped", "nfc", "cyrillic", "zwnj-kept"],
)
def test_safe_text_accepts_and_normalises(raw: str, stored: str) -> None:
    assert Label(text=raw).text == stored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("a\r\nb", "control or formatting characters (U+000D)"),
        ("a\tb", "(U+0009)"),
        ("a\u2028b", "(U+2028)"),
        ("a\u2029b", "(U+2029)"),
        ("ab\u202e", "(U+202E)"),  # right-to-left override
        ("a\x00", "(U+0000)"),
        ("a\U0002fc22", "an unassigned code point (U+2FC22)"),
        ("a\ue000", "a private-use character (U+E000)"),
        ("   ", "at least 1 character"),
        ("abcdef", "at most 5 characters"),
        (12, "valid string"),
    ],
    ids=[
        "crlf",
        "tab",
        "line-sep",
        "para-sep",
        "bidi",
        "nul",
        "unassigned",
        "private-use",
        "blank",
        "long",
        "not-str",
    ],
)
def test_safe_text_refuses(raw: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Label(text=raw)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Ada@Example.COM", "Ada@example.com"),
        ("uni@exämple.de", "uni@exämple.de"),
        ("user@xn--exmple-cua.com", "user@exämple.com"),
        ("user@例子.广告", "user@例子.广告"),
    ],
    ids=["domain-lowered", "unicode-domain", "punycode-domain", "cjk-domain"],
)
def test_email_address_keeps_international_domains(raw: str, stored: str) -> None:
    assert Address(email=raw).email == stored


@pytest.mark.parametrize("raw", ["ünï@exämple.de", "用户@example.com"])
def test_email_address_refuses_a_mailbox_name_outside_ascii(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Address(email=raw)
    assert "the part before the @ must be ASCII" in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    ["not-an-email", "a b@example.com", "ada@example.com\r\nBcc: x@y.z",
     "ada@localhost", "a@b.c", "x" * 45 + "@example.com"],
    ids=["no-at", "space", "header-injection", "no-dot", "too-short", "too-long"],
)  # fmt: skip
def test_email_address_refuses(raw: str) -> None:
    with pytest.raises(ValidationError):
        Address(email=raw)


def test_email_key_ignores_case_of_the_whole_address() -> None:
    assert email_key(Address(email="ADA@EXAMPLE.com").email) == "ada@example.com"
    assert email_key(Address(email="Uni@Exämple.de").email) == "uni@exämple.de"


@pytest.mark.parametrize(
    "raw",
    ["2027-03-01T09:00:00-00:00", "2027-03-01T09:00:00-0000", "2027-03-01T09:00-00"],
)
def test_an_instant_whose_offset_is_unknown_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Slot(starts_at=raw)

    assert refused.value.errors()[0]["msg"] == (
        "Value error, the offset -00:00 says the local offset is unknown; send the"
        " real offset, or Z for UTC"
    )


@pytest.mark.parametrize(
    ("raw", "hour"),
    [("2027-03-01T09:00:00+00:00", 9), ("2027-03-01T09:00:00Z", 9),
     ("2027-03-01T09:00:00-01:00", 10), ("2027-03-01T10:00:00+01:00", 9)],
)  # fmt: skip
def test_an_instant_with_its_offset_reads_as_that_instant(raw: str, hour: int) -> None:
    assert Slot(starts_at=raw).starts_at.hour == hour


@pytest.mark.parametrize(
    "raw", ["2027-03-01T09:00:00\u221200:00", "2027-03-01T09:00:00\u221201:00"]
)
def test_an_instant_with_a_unicode_minus_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Slot(starts_at=raw)

    assert refused.value.errors()[0]["msg"] == _NOT_RFC3339


_NOT_RFC3339 = (
    "Value error, expected an RFC 3339 time with seconds and an offset, such as"
    " 2027-03-01T09:00:00+01:00"
)


@pytest.mark.parametrize(
    "raw",
    ["2027-03-01T09:00:00-0300", "2027-03-01T09:00:00+0100",
     "2027-03-01T09:00+01:00", "2027-03-01T09:00Z", "2027-03-01T09:00:00,5Z",
     "2027-03-01T09:00:00+01", "2027-03-01T09:00:00Z\n", "1772355600",
     "2027-03-01T09:00:00.Z", "2027-03-01"],
    ids=["offset-no-colon", "plus-no-colon", "no-seconds", "no-seconds-z",
         "comma-fraction", "hour-offset", "trailing-newline", "digits",
         "empty-fraction", "date-only"],
)  # fmt: skip
def test_an_instant_outside_rfc3339_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Slot(starts_at=raw)

    assert refused.value.errors()[0]["msg"] == _NOT_RFC3339


@pytest.mark.parametrize(
    ("raw", "told"),
    [("2027-03-01T24:00:00Z", "the hour 24 is past 23"),
     ("2027-03-01T23:60:00Z", "the minute 60 is past 59"),
     # a leap second: Python's datetime holds none
     ("2016-12-31T23:59:60Z", "the second 60 is past 59"),
     ("2027-03-01T23:00:00+24:00", "the offset hour 24 is past 23"),
     ("2027-03-01T23:00:00+05:99", "the offset minute 99 is past 59"),
     # read, these were cut to 09:00:00 and 08:59:59.999999
     ("2027-03-01T09:00:00.0000001Z",
      "gives a fraction of a second finer than microseconds"),
     ("2027-03-01T08:59:59.9999999Z",
      "gives a fraction of a second finer than microseconds")],
)  # fmt: skip
def test_an_instant_out_of_its_ranges_is_refused_naming_the_part(
    raw: str, told: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Slot(starts_at=raw)

    assert refused.value.errors()[0]["msg"] == f"Value error, {told}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2027-03-01t09:00:00.250z", datetime(2027, 3, 1, 9, 0, 0, 250000, UTC)),
     # as Go's RFC3339Nano may write it
     ("2027-03-01T09:00:00.123456000Z",
      datetime(2027, 3, 1, 9, 0, 0, 123456, UTC)),
     ("2027-03-01 10:00:00+01:00", datetime(2027, 3, 1, 9, tzinfo=UTC))],
)  # fmt: skip
def test_an_instant_in_rfc3339s_other_spellings_is_read(
    raw: str, expected: datetime
) -> None:
    assert Slot(starts_at=raw).starts_at == expected
