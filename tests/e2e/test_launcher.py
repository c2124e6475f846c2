"""`python -m services.devmesh run` (what `make run` runs), as a new user sees it:
progress, a seeded demo tenant, copy-paste commands that work, and nothing
left running after Ctrl-C, SIGTERM, or even when the launcher is killed."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.devmesh.mesh import ROOT, ephemeral_ports, free_port
from tests.conftest import run_ports


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def pid_of(root: int, *words: str) -> int:
    """The descendant of ``root`` whose command line holds every one of ``words``."""
    for pid in descendants(root):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if all(any(word == arg or arg.endswith("/" + word) for arg in args) for word in words):
            return pid
    raise AssertionError(f"no process {words} under {root}")


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


@dataclass
class Launcher:
    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n{''.join(self.output)}")

    def seen(self, pattern: str, timeout: float = 120) -> None:
        """Waits until some line so far (read earlier or now) matches ``pattern``."""
        while not re.search(pattern, self.text, re.MULTILINE):
            self.wait_for(pattern, timeout)

    @property
    def text(self) -> str:
        return "".join(self.output)


def mesh_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NATS_URL")}
    env.update({
        "COMMERCE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        "COMMERCE_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "COMMERCE_METRICS_PORT_OFFSET": "0",
        "COMMERCE_LOG_LEVEL": "INFO",
        **{f"COMMERCE_{name}_PORT": str(free_port())
           for name in ("TENANT", "CATALOG", "CART", "ORDER", "PAYMENT", "NOTIFICATIONS", "SMTP", "MESHINFO",
                        "MESHINFO_CHECK", "ENVOY", "ENVOY_ADMIN")},
        **extra,
    })
    return env


Launch = Callable[..., Launcher]


@pytest.fixture
def launch() -> Iterator[Launch]:
    started: list[Launcher] = []

    def start(data_dir: Path, env: dict[str, str], *args: str) -> Launcher:
        process = subprocess.Popen([sys.executable, "-m", "services.devmesh", "run", "--data-dir", str(data_dir),
                                    *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        started.append(Launcher(process))
        return started[-1]

    yield start
    for launcher in started:  # a failed test must not leave a mesh behind either
        if launcher.process.poll() is None:
            launcher.process.kill()
            launcher.process.wait()


def printed_commands(text: str) -> dict[str, str]:
    """The copy-paste commands of the banner, continuation lines joined."""
    block = text.split("Try it (from this folder):", 1)[1].split("Demo accounts", 1)[0]
    joined = re.sub(r"\\\n\s*", "", block)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return {"token": next(line for line in lines if line.startswith("TOKEN=")),
            "curl_list": next(line for line in lines if line.startswith("curl ") and "/v1/products" in line),
            "grpcurl_list": next(line for line in lines if line.endswith(" list")),
            "grpcurl_products": next(line for line in lines if "ListProducts" in line),
            # log in as the customer, add to the cart, place the order (REST), read it back
            "checkout": "\n".join(line for line in lines if line.startswith(("CTOKEN=", "PRODUCT=", "ORDER="))
                                  or (line.startswith("curl ") and "/v1/cart/items" in line)
                                  or (line.startswith("curl ") and line.endswith("/v1/orders/$ORDER"))),
            "grpcurl_checkout": "\n".join(line for line in lines if "AddCartItem" in line or "PlaceOrder" in line)}


def bash(script: str) -> str:
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _trace_tree(data_dir: Path, order_id: str, expected: tuple[str, ...], timeout: float = 30) -> str:
    """What `python -m services.devmesh trace ORDER_ID` prints once it shows every line of ``expected``
    (processes send their spans every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run([sys.executable, "-m", "services.devmesh", "trace", order_id, "--data-dir",
                               str(data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        if (done.returncode == 0 and all(line in done.stdout for line in expected)) or time.monotonic() > deadline:
            assert done.returncode == 0, done.stderr
            assert [line for line in expected if line not in done.stdout] == [], done.stdout
            return done.stdout
        time.sleep(0.5)


def test_run_seeds_the_demo_once_prints_commands_that_work_and_ctrl_c_leaves_nothing(
        tmp_path: Path, launch: Launch) -> None:
    env = mesh_env()
    first = launch(tmp_path, env)
    first.wait_for(r"^Ready in")
    assert re.search(r"\[1/12\] starting PostgreSQL .* initialised and ready", first.text)
    assert re.search(r"\[4/12\] starting catalog .* ready \(health SERVING\)", first.text)
    assert re.search(r"\[9/12\] starting the notifications worker .* ready", first.text)
    assert "seller, customer and 12 products added" in first.text

    commands = printed_commands(first.text)
    assert "COFFEE-001" in bash(commands["token"] + "\n" + commands["curl_list"])
    assert "COFFEE-001" in bash(commands["token"] + "\n" + commands["grpcurl_products"])
    assert "grpc.health.v1.Health" in bash(commands["grpcurl_list"])
    # the printed checkout works as pasted: an order confirmed, over REST and over gRPC, and emailed
    checkout = bash(commands["checkout"] + "\n" + commands["grpcurl_checkout"])
    assert checkout.count("ORDER_STATUS_CONFIRMED") == 2, checkout
    mail = tmp_path / "mail"
    deadline = time.monotonic() + 10
    while len(list(mail.glob("*.eml"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(list(mail.glob("*.eml"))) == 2
    assert "is confirmed" in next(mail.glob("*.eml")).read_text()
    assert (tmp_path / "secrets" / "service_secret").stat().st_mode & 0o077 == 0

    # where the REST checkout's time went: its spans, Envoy's included, in .data/traces
    assert "traces" in first.text and "python -m services.devmesh trace ORDER_ID" in first.text
    order_id = re.findall(r'"orderId": ?"([^"]+)"', checkout)[0]
    tree = _trace_tree(tmp_path, order_id, ("edge: ingress", "order: /commerce.order.v1.OrderService/PlaceOrder",
                                            "order: saga confirm  [outcome=confirmed]", "notifications: smtp send"))
    assert re.search(r"^trace [0-9a-f]{32} \(\d+ spans\)$", tree, re.MULTILINE), tree
    # Processes that exit are started again: NATS stopped cleanly (exit 0), the cart service and
    # Envoy killed, PostgreSQL shut down; the mesh serves again, and the restarts were shown.
    victims = {"nats": (("nats-server",), signal.SIGTERM), "cart": (("services.cart",), signal.SIGKILL),
               "envoy": (("envoy", "-c"), signal.SIGKILL), "postgres": (("postgres", "-D"), signal.SIGINT)}
    for words, sig in victims.values():
        os.kill(pid_of(first.process.pid, *words), sig)
    for name in victims:
        first.seen(rf"\[supervisor\] {name} is ready again", timeout=90)
    assert re.search(r"\[supervisor\] nats exited \(code 0\); starting it again in", first.text)
    assert re.search(r"\[supervisor\] cart exited \(code -9\)", first.text)
    assert "supervisor: starting cart again (restart 1)" in (tmp_path / "logs" / "cart.log").read_text()
    checkout = bash(commands["checkout"])
    assert "ORDER_STATUS_CONFIRMED" in checkout, checkout

    processes = descendants(first.process.pid)
    assert len(processes) >= 10  # PostgreSQL, NATS, 5 services, notifications, SMTP sink, meshinfo, Envoy
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(30) == 0
    assert wait_gone(processes, 5) == set()

    second = launch(tmp_path, env)
    second.wait_for(r"^Ready in")
    assert "initialised" not in second.text
    assert "tenant 'demo' already seeded" in second.text
    processes = descendants(second.process.pid)
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(30) == 0
    assert wait_gone(processes, 5) == set()


def test_killing_the_launcher_leaves_no_process_behind(tmp_path: Path, launch: Launch) -> None:
    launcher = launch(tmp_path, mesh_env(COMMERCE_EDGE_SERVICES="[]"), "--no-seed")
    launcher.wait_for(r"^Ready in")
    processes = descendants(launcher.process.pid)
    assert len(processes) >= 4  # PostgreSQL, NATS, meshinfo, Envoy
    launcher.process.kill()
    launcher.process.wait()
    assert wait_gone(processes, 10) == set()


def test_a_second_mesh_on_the_same_ports_is_refused_with_a_clear_message(tmp_path: Path, launch: Launch) -> None:
    env = mesh_env(COMMERCE_EDGE_SERVICES="[]")
    first = launch(tmp_path / "one", env, "--no-seed")
    first.wait_for(r"^Ready in")
    second = launch(tmp_path / "two", env, "--no-seed")
    assert second.process.wait(30) == 1
    second.wait_for(r"ports already in use", timeout=5)
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(30) == 0


def test_the_default_ports_lie_outside_the_range_the_kernel_gives_outgoing_connections() -> None:
    low, high = ephemeral_ports()
    inside = {port: variable for port, variable in run_ports().items() if low <= port <= high}
    assert inside == {}, f"`make run` would find these taken by outgoing connections now and then: {inside}"
