"""Progress lines of the launcher: "[3/7] starting tenant ... ready (health SERVING, 1.4s)"."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, stream: TextIO | None = sys.stdout) -> None:
        self.total = total
        self.stream = stream
        self._step = 0
        self._started = 0.0

    def _write(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write(text)
            self.stream.flush()

    def begin(self, text: str) -> None:
        self._step += 1
        self._started = time.monotonic()
        self._write(f"[{self._step}/{self.total}] {text} ... ")

    def end(self, text: str) -> None:
        self._write(f"{text} ({time.monotonic() - self._started:.1f}s)\n")

    def fail(self, text: str) -> None:
        self._write(f"FAILED\n{text}\n")

    def note(self, text: str) -> None:
        self._write(text + "\n")
