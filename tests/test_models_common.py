from typing import Annotated

import pytest
from pydantic import BaseModel, ValidationError

from api.models.common import EmailAddress, SafeText, email_key


class Label(BaseModel):
    text: Annotated[str, SafeText(min_length=1, max_length=5)]


class Address(BaseModel):
    email: EmailAddress


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
        ("ünï@exämple.de", "ünï@exämple.de"),
        ("user@xn--exmple-cua.com", "user@exämple.com"),
        ("用户@例子.广告", "用户@例子.广告"),
    ],
    ids=["domain-lowered", "unicode", "punycode-domain", "cjk"],
)
def test_email_address_normalises_international(raw: str, stored: str) -> None:
    assert Address(email=raw).email == stored


@pytest.mark.parametrize(
    "raw",
    ["not-an-email", "a b@example.com", "ada@example.com\r\nBcc: x@y.z", "ada@localhost",
     "a@b.c", "x" * 45 + "@example.com"],
    ids=["no-at", "space", "header-injection", "no-dot", "too-short", "too-long"],
)  # fmt: skip
def test_email_address_refuses(raw: str) -> None:
    with pytest.raises(ValidationError):
        Address(email=raw)


def test_email_key_ignores_case_of_the_whole_address() -> None:
    assert email_key(Address(email="ADA@EXAMPLE.com").email) == "ada@example.com"
    assert email_key(Address(email="Ünï@exämple.de").email) == "ünï@exämple.de"
