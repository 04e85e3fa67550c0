"""A local mailbox for ``kairos up``: a real SMTP server on loopback that keeps each email
as a ``.eml`` file, so notification emails can be read without configuring a mail provider.

Production sets ``KAIROS_SMTP_HOST`` and friends instead; this is never started there.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from interfaces.serving import free_port


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        stamp = time.strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{next(self._numbers):04d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class LocalMailbox:
    """Start with ``start()``; ``host``/``port`` are where Kairos sends; files land in
    ``folder``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.host = "127.0.0.1"
        self.port = free_port()
        self._controller = Controller(_SaveToFolder(folder), hostname=self.host, port=self.port)

    def start(self) -> LocalMailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
