"""An SMTP server that keeps every message as a .eml file a person can open."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from functools import cached_property
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ReceivedMail:
    path: Path
    envelope_from: str
    envelope_to: list[str]
    received_at: float
    raw: bytes = field(repr=False)

    @cached_property
    def message(self) -> EmailMessage:
        # parsed when read: a full parse cost the dev stack more CPU than sending
        parsed: Any = email.message_from_bytes(self.raw, policy=email.policy.default)
        return parsed


class _Handler:
    def __init__(self, sink: MailSink):
        self.sink = sink

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.sink.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.sink.refuse_recipient_with:
            return self.sink.refuse_recipient_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.sink.refuse_with:
            return self.sink.refuse_with
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        self.sink.store(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class MailSink:
    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 8025):
        self.directory = directory
        self.host = host
        self.port = port
        self.received: list[ReceivedMail] = []
        # an SMTP reply such as "451 try later", for tests of a failing server
        self.refuse_with: str | None = None
        # the same at RCPT, as a server answers for an address it does not know
        self.refuse_recipient_with: str | None = None
        # EHLOs seen: how many SMTP sessions clients opened
        self.sessions = 0
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self._counter = 0

    def store(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> ReceivedMail:
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        with self._lock:
            self._counter += 1
            stamp = time.strftime("%Y%m%d-%H%M%S")
            name = _UNSAFE.sub(
                "_", str(headers.get("Message-ID", "")).strip().strip("<>")
            )[:80]
            path = (
                self.directory / f"{stamp}-{self._counter:05d}-{name or 'message'}.eml"
            )
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)
            item = ReceivedMail(path, mail_from, rcpt_tos, time.time(), raw)
            self.received.append(item)
        return item

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, ready_timeout=10
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
