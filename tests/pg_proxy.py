"""A relay in front of PostgreSQL's Unix socket that a test can cut and restore.

Cutting it closes every relayed connection and the listening socket, so a
client sees what it sees when the server goes away: its pooled connections
break and new ones are refused, while the real server, and every other test
on it, carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit


class PostgresProxy:
    def __init__(self, dsn: str, directory: Path):
        parts = urlsplit(dsn)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        name = f".s.PGSQL.{query['port']}"
        self.upstream = Path(query["host"]) / name
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / name
        self.dsn = urlunsplit(
            parts._replace(query=urlencode({**query, "host": str(directory)}))
        )
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self._flowing = asyncio.Event()
        self._flowing.set()

    def freeze(self) -> None:
        """Hold every byte from now on, as a server stopped dead would: the
        connections stay open and nothing answers."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def restore(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_unix_server(self._relay, self.path)

    def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.path.unlink(missing_ok=True)
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        await self._flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer),
            self._pipe(up_reader, writer),
            return_exceptions=True,
        )
        self._links -= {writer, up_writer}

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError):
                writer.transport.abort()
