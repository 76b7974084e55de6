"""The mail worker's SMTP connections, against a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from activities import smtp_pool
from activities.smtp_pool import SmtpConnections
from api.devstack import free_port
from api.mailsink import MailSink
from tests.conftest import make_settings


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    server = MailSink(tmp_path / "mail", port=free_port())
    server.start()
    yield server
    server.stop()


def _message(number: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "noreply@tlounge.local"
    message["To"] = "client@example.com"
    message["Subject"] = f"mail {number}"
    message["Message-ID"] = f"<mail-{number}@tlounge.local>"
    message.set_content(f"body {number}")
    return message


def _connections(sink: MailSink, size: int = 2) -> SmtpConnections:
    return SmtpConnections(make_settings(smtp_port=sink.port), size=size)


def _subjects(sink: MailSink) -> list[str]:
    return [str(mail.message["Subject"]) for mail in sink.received]


async def test_mails_share_one_session(sink: MailSink) -> None:
    smtp = _connections(sink)
    for number in range(3):
        await smtp.send(_message(number))
    await smtp.close()
    assert _subjects(sink) == ["mail 0", "mail 1", "mail 2"]
    assert sink.sessions == 1


async def test_a_refused_mail_closes_its_session(sink: MailSink) -> None:
    smtp = _connections(sink)
    await smtp.send(_message(0))
    sink.refuse_with = "451 4.3.0 try again later"
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await smtp.send(_message(1))
    assert refused.value.code == 451
    sink.refuse_with = None
    await smtp.send(_message(2))
    await smtp.close()
    # the refused session was dropped; the retry came on a new one
    assert _subjects(sink) == ["mail 0", "mail 2"]
    assert sink.sessions == 2


async def test_a_session_the_server_dropped_is_replaced(
    sink: MailSink, tmp_path: Path
) -> None:
    smtp = _connections(sink)
    await smtp.send(_message(0))
    sink.stop()
    restarted = MailSink(tmp_path / "again", port=sink.port)
    restarted.start()
    try:
        await smtp.send(_message(1))
        await smtp.close()
    finally:
        restarted.stop()
    assert _subjects(sink) == ["mail 0"]
    assert _subjects(restarted) == ["mail 1"]
    assert restarted.sessions == 1


async def test_a_long_idle_session_is_not_trusted(
    sink: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smtp_pool, "MAX_IDLE_SECONDS", 0.0)
    smtp = _connections(sink)
    await smtp.send(_message(0))
    await smtp.send(_message(1))
    await smtp.close()
    assert _subjects(sink) == ["mail 0", "mail 1"]
    assert sink.sessions == 2


async def test_no_more_sessions_are_kept_than_the_size(sink: MailSink) -> None:
    smtp = _connections(sink, size=1)
    await asyncio.gather(*(smtp.send(_message(number)) for number in range(3)))
    assert len(smtp._idle) == 1
    await smtp.send(_message(3))
    await smtp.close()
    assert len(_subjects(sink)) == 4
    assert sink.sessions == 3
    assert smtp._idle == []
