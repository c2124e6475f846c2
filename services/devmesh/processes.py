"""Child processes of the dev mesh: each in its own process group (so a stop
reaches everything it started), its output appended to a log file, and told
by the kernel to stop when the launcher dies (PR_SET_PDEATHSIG), so no process
outlives the launcher, even when the launcher is killed."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_prctl = _libc.prctl


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A preexec_fn: the child gets ``sig`` when the process that started it exits.

    The kernel ties this to the *thread* that forked: start children from the
    main thread. Runs after setuid in the child, so it survives a user switch.
    """
    parent = os.getpid()

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_bytes()[-16384:].decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Process:
    name: str
    args: Sequence[str]
    log_file: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.args)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                list(self.args), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None, cwd=self.cwd,
                start_new_session=True, preexec_fn=die_with_parent(self.stop_signal),
            )

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def signal(self, sig: int | None = None) -> None:
        """Signals the whole process group (the process and anything it started)."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig or self.stop_signal)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> bool:
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.alive():
            self.signal()
            if not self.wait(timeout):
                self.signal(signal.SIGKILL)
                self.popen.wait()
        self.signal(signal.SIGKILL)  # stragglers left in the group

    def log_tail(self, lines: int = 15) -> str:
        return tail(self.log_file, lines)


def stop_all(processes: Sequence[Process], timeout: float = 10.0) -> None:
    """Stops several processes at once: signal all, then wait for all."""
    for process in processes:
        if process.alive():
            process.signal()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.wait(max(0.0, deadline - time.monotonic()))
    for process in processes:
        process.stop(0)
