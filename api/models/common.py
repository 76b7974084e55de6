"""Validated building blocks for request models: safe free text and email addresses.

Text a person types ends up in mail headers, PDFs and admin screens, so it is
normalised (NFC, no surrounding whitespace) and refused when it carries
control or formatting characters that could split a header or hide text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import GroupedMetadata, MaxLen, MinLen
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    StringConstraints,
    WithJsonSchema,
)

# Categories never allowed: controls (CR, LF, TAB, NUL...), line and paragraph
# separators, surrogates, private use and unassigned code points.
_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs", "Co", "Cn"})
# Format characters (Cf: bidi overrides, invisible marks) are refused too, except
# the zero-width joiner and non-joiner, which Persian, Indic scripts and emoji need.
_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip()
    return value


# how a refusal names what it found
_KIND_OF = {"Co": "a private-use character", "Cn": "an unassigned code point",
            "Cs": "a lone surrogate"}  # fmt: skip


def refuse_control_characters(value: str) -> str:
    for char in value:
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES or (
            category == "Cf" and char not in _ALLOWED_FORMAT
        ):
            if category in _KIND_OF:
                raise ValueError(
                    f"must not contain {_KIND_OF[category]} (U+{ord(char):04X})"
                )
            raise ValueError(
                f"must not contain control or formatting characters (U+{ord(char):04X})"
            )
    return value


def refuse_encoded_words(value: str) -> str:
    # a mail reader decodes `=?charset?q?...?=` as if we had encoded it, so a
    # name could smuggle text that looks like a header into what people read
    if "=?" in value:
        raise ValueError("must not contain an encoded-word (=?)")
    return value


@dataclass(frozen=True)
class SafeText(GroupedMetadata):
    """One line of text: NFC, stripped, its length in code points, no controls.

    label: Annotated[str, SafeText(min_length=1, max_length=50)]
    """

    max_length: int
    min_length: int = 0

    def __iter__(self) -> Iterator[Any]:
        # the bounds apply to the normalised value, and show in the OpenAPI schema
        yield MinLen(self.min_length)
        yield MaxLen(self.max_length)
        yield BeforeValidator(_normalise)
        yield AfterValidator(refuse_control_characters)
        yield AfterValidator(refuse_encoded_words)


def normalise_email(value: str) -> str:
    """The address as we store it; international domain names are accepted.

    No DNS lookup: a sign-up must not depend on a resolver, and deliverability
    is proven by mail, not by the MX record. A mailbox name outside ASCII is
    refused: it needs SMTPUTF8 end to end, which our mail does not speak, so
    the account could never be mailed.
    """
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"not a valid email address: {error}") from None
    if checked.ascii_email is None:
        raise ValueError(
            "the part before the @ must be ASCII; international mailbox names"
            " cannot be mailed"
        )
    return checked.normalized


def email_key(address: str) -> str:
    """What uniqueness is decided on: the normalised address, lower-cased."""
    return address.lower()


# The contract bounds every email field to 6-50 characters.
EmailAddress = Annotated[
    str,
    StringConstraints(min_length=6, max_length=50),
    WithJsonSchema(
        {"type": "string", "format": "email", "minLength": 6, "maxLength": 50}
    ),
    BeforeValidator(_normalise),
    AfterValidator(normalise_email),
]


def _instant_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if _UNKNOWN_OFFSET.search(value):
        # RFC 3339, 4.3: the time is in UTC, where the sender was is unknown;
        # a booking's place in its day would be a guess
        raise ValueError(
            "the offset -00:00 says the local offset is unknown; send the"
            " real offset, or Z for UTC"
        )
    # the parser beneath also reads "-0300", "09:00", "00,5" and a string of
    # digits as a Unix time; the errors promise RFC 3339, so only that is taken.
    # A Unicode minus (U+2212) in an offset fails here too.
    found = _RFC3339.match(value) if value.isascii() else None
    if found is None:
        raise ValueError(
            "expected an RFC 3339 time with seconds and an offset, such as"
            " 2027-03-01T09:00:00+01:00"
        )
    if (found.group("finer") or "0").strip("0"):
        # the parser would cut them off, and book or look up another instant
        raise ValueError("gives a fraction of a second finer than microseconds")
    # the parser's words for these are "unexpected extra characters"
    for part, bound in (("hour", 23), ("minute", 59), ("second", 59),
                        ("offset_hour", 23), ("offset_minute", 59)):  # fmt: skip
        number = found.group(part)
        if number is not None and int(number) > bound:
            raise ValueError(f"the {part.replace('_', ' ')} {number} is past {bound}")
    return value


def _plus_read_as_space(value: Any) -> Any:
    if isinstance(value, str) and _PLUS_AS_SPACE.search(value):
        raise ValueError(
            "the offset's '+' arrived as a space, as a query string reads it;"
            " send it as %2B"
        )
    return value


# without an offset it is let through, for the parser's own "timezone info" error
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ](?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
    r"(?:\.\d{1,6}(?P<finer>\d*))?"
    r"(?:[Zz]|[+-](?P<offset_hour>\d{2}):(?P<offset_minute>\d{2}))?\Z"
)
_UNKNOWN_OFFSET = re.compile(r"-00(?::?00)?$")
_PLUS_AS_SPACE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)? \d{2}(?::?\d{2})?$")
# Text searched for, up to 50 characters: a NUL or other control character
# never reaches SQL. The bound comes first, so pydantic counts characters.
SearchText = Annotated[
    str, StringConstraints(max_length=50), AfterValidator(refuse_control_characters)
]


def _in_utc(value: datetime) -> datetime:
    # an offset can carry year 1 or 9999 past what a datetime holds in UTC
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("lies outside the years 1 to 9999 once in UTC") from None


_AwareText = Annotated[
    AwareDatetime, BeforeValidator(_instant_text), AfterValidator(_in_utc)
]
# An instant in a query: RFC 3339 text with an offset, never a bare number.
Instant = Annotated[_AwareText, BeforeValidator(_plus_read_as_space)]


def _text_only(value: object) -> object:
    # a JSON number would pass as a Unix timestamp; the contract says RFC 3339
    # text (JSON never gives a datetime; our own code may)
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time string with an offset")
    return value


# the years a booking, and so any day asked about, may lie in
BOOKING_YEARS = range(2000, 2201)


def _sane_year(value: datetime) -> datetime:
    if value.year not in BOOKING_YEARS:
        raise ValueError(
            f"must lie between the years {BOOKING_YEARS[0]} and {BOOKING_YEARS[-1]}"
        )
    return value


BookingInstant = Annotated[
    _AwareText, BeforeValidator(_text_only), AfterValidator(_sane_year)
]


def _in_digits(value: Any) -> Any:
    # a query's number arrives as text, and int() in lax mode reads "1.0" as 1
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
        raise ValueError("must be a whole number written in digits")
    return value


# on an integer query parameter: "1.0", "1e3" or "0x10" is refused, not read
InDigits = BeforeValidator(_in_digits)
