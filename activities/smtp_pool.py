"""A few SMTP connections kept open between mails.

A connection per mail costs a TCP handshake, EHLO, maybe STARTTLS and AUTH,
and QUIT: more than the mail itself on a busy worker. A connection that
failed in any way is closed, never reused, so no session state leaks from
one mail into the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from email.message import Message

import aiosmtplib

from api.settings import Settings

# Servers drop idle sessions (RFC 5321 lets them after five minutes, some
# sooner); one idle this long is closed rather than trusted.
MAX_IDLE_SECONDS = 30.0


class SmtpConnections:
    def __init__(self, settings: Settings, *, size: int):
        self.settings = settings
        self.size = size
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []

    def _new(self) -> aiosmtplib.SMTP:
        settings = self.settings
        return aiosmtplib.SMTP(
            hostname=settings.smtp_host or "127.0.0.1",
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value()
                if settings.smtp_password
                else None
            ),
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout,
        )

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        now = time.monotonic()
        while self._idle:
            smtp, since = self._idle.pop()
            if now - since < MAX_IDLE_SECONDS and smtp.is_connected:
                return smtp
            self._discard(smtp)
        return None

    async def send(self, message: Message) -> None:
        """Send on an open connection if one is idle, else on a new one.

        A reused connection the server had closed while it was idle fails at
        its first command, and the mail goes once more on a fresh one. A
        disconnect after the server took the message is the window the mail
        activity already names: a repeat, with the same Message-ID.
        """
        smtp = self._take_idle()
        if smtp is not None:
            try:
                await smtp.send_message(message)
            except aiosmtplib.SMTPServerDisconnected:
                self._discard(smtp)
            except BaseException:
                self._discard(smtp)
                raise
            else:
                self._keep(smtp)
                return
        smtp = self._new()
        try:
            await smtp.connect()
            await smtp.send_message(message)
        except BaseException:
            self._discard(smtp)
            raise
        self._keep(smtp)

    def _keep(self, smtp: aiosmtplib.SMTP) -> None:
        if len(self._idle) < self.size:
            self._idle.append((smtp, time.monotonic()))
        else:
            self._discard(smtp)

    def _discard(self, smtp: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(Exception):
            smtp.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for smtp, _ in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await asyncio.wait_for(smtp.quit(), timeout=2)
            self._discard(smtp)
