"""Names built to split a mail header never add a header or a recipient."""

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import getaddresses

import pytest
from aiosmtplib.email import flatten_message

from activities.mail_render import (
    MailBuildError,
    MailContext,
    build_message,
    message_id,
)
from proto import reservation_pb2 as pb
from tests.factories import create_admin, create_client

HOSTILE = [
    # each fits the 15 characters of a name, so only its content is refused
    pytest.param("E\r\nBcc: x@e.io", id="crlf"),
    pytest.param("E\nBcc: x@e.io", id="lf"),
    pytest.param("E\rBcc: x@e.io", id="cr"),
    pytest.param("=?utf8?q?=0A?=", id="encoded_word"),
    pytest.param("Eve\u2028Bcc: x", id="line_separator"),
    pytest.param("Eve\u2029Bcc: x", id="paragraph_separator"),
    pytest.param("Eve\u0085Bcc: x", id="next_line"),
    pytest.param("Eve\x00Bcc", id="nul"),
]
REFUSAL = {
    False: "must not contain control or formatting characters",
    True: "must not contain an encoded-word",
}
# what a booking mail carries, and nothing else
HEADERS = {
    "From", "To", "Subject", "Message-ID", "Date", "X-TLounge-Reservation",
    "Content-Type", "MIME-Version",
}  # fmt: skip


def _form(**changes: str) -> dict:
    return {
        "email": "eve@example.com", "password": "long enough pass", "name": "Eve",
        "surname": "Stone", "patronymic": "", **changes,
    }  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE)
async def test_register_client_with_header_breaking_name_refused(
    api, db, value
) -> None:
    answers = {}
    for field in ("name", "surname", "patronymic"):
        response = await api.post("/api/client/register", json=_form(**{field: value}))
        field_named, _, reason = response.json()["description"].partition(": ")
        answers[field] = (response.status_code, response.json()["error"],
                          field_named, reason.split(" (")[0])  # fmt: skip
    assert answers == {
        f: (400, "invalid_body", f, REFUSAL[value.startswith("=?")]) for f in answers
    }
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0


@pytest.mark.parametrize("value", HOSTILE)
async def test_edit_profile_with_header_breaking_name_refused(
    api, db, settings, value
) -> None:
    client = await create_client(db, settings, name="Ada")
    admin = await create_admin(db, settings)
    own = await api.patch(
        "/api/client", json={"surname": value}, headers=client.headers
    )
    staff = await api.patch(
        f"/api/client/{client.id}", json={"name": value}, headers=admin.headers
    )
    assert (own.status_code, own.json()["description"].split(":")[0]) == (
        400,
        "surname",
    )
    assert (staff.status_code, staff.json()["description"].split(":")[0]) == (
        400,
        "name",
    )
    row = await db.fetchrow("SELECT name, surname FROM client.clients")
    assert dict(row) == {"name": "Ada", "surname": "Lovelace"}


@pytest.mark.parametrize(
    "email", ["eve@example.com\r\nBcc: x@evil.io", "eve@example.com,x@evil.io",
              "Eve <x@evil.io>"], ids=["crlf", "comma", "display_name"],
)  # fmt: skip
async def test_register_client_with_hostile_email_refused(api, db, email) -> None:
    response = await api.post("/api/client/register", json=_form(email=email))
    assert response.status_code == 400
    assert response.json()["description"].startswith("email:")
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0


def _context(**changes: object) -> MailContext:
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    values: dict = {
        "reservation_id": "r-1", "kind": pb.MAIL_KIND_CONFIRMATION, "version": 1,
        "recipient_email": "ada@example.com", "recipient_name": "Ada Lovelace",
        "coworking_name": "Lounge One", "coworking_address": "1 Test Street",
        "timezone": "Europe/Berlin", "seat_number": 3, "starts_at": start,
        "ends_at": start + timedelta(hours=1), **changes,
    }  # fmt: skip
    return MailContext(**values)


# a confirmation's invitation, and the withdrawal of one sent before
KINDS = [
    pytest.param({"kind": pb.MAIL_KIND_CONFIRMATION}, id="confirmation"),
    pytest.param(
        {"kind": pb.MAIL_KIND_CANCELLATION, "invited_version": 1}, id="cancellation"
    ),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "field", ["recipient_name", "recipient_email", "coworking_name"]
)
@pytest.mark.parametrize("value", HOSTILE)
def test_build_message_with_header_breaking_text_refused(
    field: str, value: str, kind: dict
) -> None:
    hostile = f"ada{value}@example.com" if field == "recipient_email" else value
    with pytest.raises(MailBuildError):
        build_message(
            _context(**{field: hostile}, **kind), sender="T <t@x.io>", domain="x.io"
        )


@pytest.mark.parametrize(
    "name",
    ["x@evil.io, <y@evil.io>", 'Eve "Bcc: y@evil.io"', "Zoë; Bcc:z@evil.io",
     '<>,;:\\"@'],
    ids=["address_list", "quoted_header", "semicolon", "specials"],
)  # fmt: skip
@pytest.mark.parametrize("kind", KINDS)
def test_build_message_with_address_lookalike_name_one_recipient(
    name: str, kind: dict
) -> None:
    message = build_message(
        _context(recipient_name=name, **kind),
        sender="T-Lounge <t@x.io>",
        domain="x.io",
    )
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert set(parsed.keys()) == HEADERS
    assert len(parsed.keys()) == len(HEADERS)
    recipients = getaddresses(parsed.get_all("To", []) + parsed.get_all("Cc", []))
    assert [address for _, address in recipients] == ["ada@example.com"]
    assert parsed["To"].addresses[0].display_name == name
    method = "CANCEL" if kind["kind"] == pb.MAIL_KIND_CANCELLATION else "PUBLISH"
    assert [part.get_param("method") for part in parsed.iter_attachments()] == [method]


def test_build_message_sends_an_international_domain_in_its_idna_form() -> None:
    message = build_message(
        _context(recipient_email="ada@exämple.de"), sender="T <t@x.io>", domain="x.io"
    )
    assert b"\nTo: Ada Lovelace <ada@xn--exmple-cua.de>\n" in message.as_bytes()


def test_build_message_for_a_mailbox_name_outside_ascii_is_a_build_error() -> None:
    # accounts made before such names were refused at sign-up
    with pytest.raises(MailBuildError, match="the mailbox name is not ASCII"):
        build_message(
            _context(recipient_email="ünï@example.de"),
            sender="T <t@x.io>",
            domain="x.io",
        )


@pytest.mark.parametrize("kind", list(pb.MailKind.values())[1:])
def test_message_id_stays_on_its_header_line_as_sent(kind: int) -> None:
    context = _context(
        kind=kind, reservation_id="0b7c1d52-6f0f-4c61-9d6a-1f0e4a1b2c3d", version=1
    )
    # the default domain: the id alone then fits a line of its own, where the
    # mail policy would fold it
    domain = "tlounge.local"
    message = build_message(context, sender="T <t@x.io>", domain=domain)
    # the bytes the SMTP client puts on the wire
    raw = flatten_message(message)
    mid = message_id(context.reservation_id, kind, 1, domain)
    assert f"\r\nMessage-ID: {mid}\r\n".encode() in raw
    assert f"\r\nX-TLounge-Reservation: {context.reservation_id}\r\n".encode() in raw
    assert message_from_bytes(raw, policy=policy.default)["Message-ID"] == mid
