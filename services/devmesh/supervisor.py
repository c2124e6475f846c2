"""Keeps the mesh's processes running: one that exits on its own (a service, the
notifications worker, the SMTP sink, meshinfo, Envoy, NATS, PostgreSQL) is started again
after a back-off, and each exit, restart and return to readiness is written to the progress
output and to that process's log.

The back-off is tenacity's exponential wait with jitter (0.5 s, 1 s, 2 s ... at most 30 s,
plus up to 0.5 s at random), counted over the exits that came soon after a start: a process
that had run for ``stable_seconds`` starts again after 0.5 s. Restarts happen on the
supervisor's own thread, which lives as long as the mesh: children are told by the kernel to
stop when the thread that started them ends (processes.die_with_parent), so none outlives it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tenacity

from services.devmesh.progress import Progress


@dataclass
class Member:
    """One supervised process: how to tell it runs, start it (without waiting), and see it ready."""

    name: str
    exit_code: Callable[[], int | None]  # None while it runs
    launch: Callable[[], None]
    ready: Callable[[], bool]
    log_file: Path
    restarts: int = 0
    held: bool = False  # stopped on purpose (a chaos run's outage): not restarted until released
    _quick_exits: int = 0
    _held_said: bool = False
    _started: float = field(default_factory=time.monotonic)
    _due: float | None = None  # when it starts again
    _down_since: float | None = None  # exited, not ready again yet
    _waiting_ready: bool = False


@dataclass(frozen=True)
class Restart:
    """What the supervisor did, for whoever watches (a chaos run measures heal times with it)."""

    name: str
    exit_code: int
    exited_at: float  # time.monotonic()
    ready_at: float | None = None


class Supervisor:
    def __init__(self, members: list[Member], progress: Progress, *, initial_seconds: float = 0.5,
                 max_seconds: float = 30.0, jitter_seconds: float = 0.5, stable_seconds: float = 10.0,
                 interval: float = 0.2) -> None:
        self.members = {member.name: member for member in members}
        self._progress = progress
        self._wait = tenacity.wait_exponential_jitter(initial=initial_seconds, max=max_seconds, jitter=jitter_seconds)
        self._stable = stable_seconds
        self._interval = interval
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.history: list[Restart] = []

    # -- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        for member in self.members.values():
            member._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="devmesh-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No more restarts (before the mesh stops its processes)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.tick()

    # -- holding a process down on purpose -------------------------------------------------

    def hold(self, name: str) -> None:
        """Leave ``name`` down once it exits (until ``release``)."""
        with self._lock:
            self.members[name].held = True

    def release(self, name: str) -> None:
        """Start ``name`` again now if it is down."""
        with self._lock:
            member = self.members[name]
            member.held = member._held_said = False
            if member.exit_code() is not None and member._due is None:
                member._due = time.monotonic()

    # -- one look at every process ---------------------------------------------------------

    def tick(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            now = time.monotonic()
            for member in self.members.values():
                self._look_at(member, now)

    def _look_at(self, member: Member, now: float) -> None:
        code = member.exit_code()
        if code is None:  # running: say when a restarted one is ready
            if member._waiting_ready and member.ready():
                member._waiting_ready = False
                down_since, member._down_since = member._down_since or now, None
                self._say(member, f"{member.name} is ready again, {now - down_since:.1f}s after it exited")
                self._record_ready(member.name, now)
            return
        if member._due is not None:  # down, its restart scheduled
            if now >= member._due:
                self._launch(member, now)
            return
        if member._down_since is None:  # an exit just seen
            member._down_since = now
            self.history.append(Restart(member.name, code, now))
        member._waiting_ready = False
        if member.held:
            if not member._held_said:
                member._held_said = True
                self._say(member, f"{member.name} exited (code {code}); held down on purpose until released")
            return
        self._schedule(member, code, now)

    def _launch(self, member: Member, now: float) -> None:
        member._due = None
        member.restarts += 1
        member._started = now
        member._waiting_ready = True
        self._say(member, f"starting {member.name} again (restart {member.restarts})")
        try:
            member.launch()
        except Exception as error:  # e.g. its port still held: seen as down again at the next look
            self._say(member, f"could not start {member.name}: {error}")

    def _schedule(self, member: Member, code: int, now: float) -> None:
        quick = now - member._started < self._stable
        member._quick_exits = member._quick_exits + 1 if quick else 1
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = member._quick_exits
        delay = float(self._wait(state))
        member._due = now + delay
        self._say(member, f"{member.name} exited (code {code}); starting it again in {delay:.1f}s")

    def _record_ready(self, name: str, now: float) -> None:
        for n in range(len(self.history) - 1, -1, -1):
            entry = self.history[n]
            if entry.name == name and entry.ready_at is None:
                self.history[n] = Restart(entry.name, entry.exit_code, entry.exited_at, now)
                return

    def _say(self, member: Member, text: str) -> None:
        self._progress.note(f"[supervisor] {text}")
        try:
            with open(member.log_file, "a") as log:
                log.write(f"===== {time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {text}\n")
        except OSError:
            pass
