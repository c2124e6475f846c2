"""A local SMTP server that accepts every message and saves it as an ``.eml`` file,
for running the mesh on one machine without a real mail server:

    python -m services.notifications.sink --dir .data/mail --port 2525

Each message becomes ``<dir>/<UTC time>-<random>.eml`` (written whole, then renamed,
so a reader never sees half a message); open it with any mail client.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class SaveToFolder:
    """aiosmtpd handler: one .eml file per message received."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if isinstance(envelope.content, str) and not content:
            content = envelope.content.encode()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.folder / f"{stamp}-{secrets.token_hex(4)}.eml"
        _write_whole(target, content)  # a few KB on local disk: cheaper than a thread hop
        return "250 Message accepted for delivery"


def _write_whole(target: Path, content: bytes) -> None:
    partial = target.with_suffix(".part")
    partial.write_bytes(content)
    partial.rename(target)


class _Session(SMTP):
    """An SMTP session the sink can close when it stops (clients keep theirs open)."""

    def __init__(self, handler: SaveToFolder, sink: Sink) -> None:
        super().__init__(handler, hostname="commerce-mesh-sink", enable_SMTPUTF8=True)
        self._open_sessions = sink.open_sessions
        self._sink = sink
        self._own: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._own = transport
        self._open_sessions.add(transport)
        self._sink.sessions_opened += 1
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._own is not None:
            self._open_sessions.discard(self._own)
        super().connection_lost(exc)


class Sink:
    """The running sink; ``close()`` stops listening and ends the open sessions, as a
    mail server that goes away does."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.open_sessions: set[asyncio.BaseTransport] = set()
        self.sessions_opened = 0

    async def start(self, folder: Path, host: str, port: int) -> None:
        handler = SaveToFolder(folder)

        def protocol() -> Any:
            return _Session(handler, self)

        self._server = await asyncio.get_running_loop().create_server(protocol, host=host, port=port)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for transport in list(self.open_sessions):
            transport.close()
        await self._server.wait_closed()
        self._server = None


async def start_sink(folder: Path, host: str = "127.0.0.1", port: int = 2525) -> Sink:
    """Serve SMTP on host:port (port 0 = any free port), saving messages in ``folder``."""
    sink = Sink()
    await sink.start(folder, host, port)
    return sink


async def _serve(folder: Path, host: str, port: int) -> None:
    server = await start_sink(folder, host, port)
    print(f"SMTP sink on {host}:{port}, saving messages to {folder}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local SMTP sink that saves each message as an .eml file.")
    parser.add_argument("--dir", type=Path, default=Path(".data/mail"), help="folder for the .eml files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.dir.resolve(), args.host, args.port))


if __name__ == "__main__":
    main()
