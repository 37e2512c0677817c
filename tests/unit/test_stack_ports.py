"""Ports and child processes of the embedded stack (loopback sockets and local processes only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raypay.tools.stack import Server, StackError, free_port, pick_port, port_is_free

pytestmark = pytest.mark.unit


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _python(tmp_path: Path, code: str) -> Server:
    return Server.spawn("probe", [sys.executable, "-c", code], "-", tmp_path / "probe.log")


def test_pick_port_keeps_the_preferred_port_when_it_is_free() -> None:
    port = free_port()
    assert pick_port(port) == port


def test_pick_port_falls_back_to_a_free_port_when_the_preferred_one_is_taken(
    listener: int,
) -> None:
    chosen = pick_port(listener)
    assert chosen != listener
    assert port_is_free(chosen)


def test_pick_port_answers_at_once_for_a_taken_port(listener: int) -> None:
    started = time.monotonic()
    pick_port(listener)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("preferred", [0, -1, 65536, 70000])
def test_pick_port_treats_impossible_ports_as_taken(preferred: int) -> None:
    chosen = pick_port(preferred)
    assert chosen != preferred
    assert 0 < chosen < 65536
    # Free right now: a listener of our own binds it (no SO_REUSEADDR, unlike port_is_free).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", chosen))
        sock.listen()
        assert sock.getsockname() == ("127.0.0.1", chosen)


def test_port_is_free_sees_a_listener(listener: int) -> None:
    assert not port_is_free(listener)


def test_stop_terminates_the_process(tmp_path: Path) -> None:
    server = _python(tmp_path, "import time; time.sleep(60)")
    server.stop()
    assert not server.alive()
    server.stop()  # idempotent


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    server = _python(tmp_path, code)
    server.wait_ready(lambda: "ready" in server.log_tail(), timeout=10)
    started = time.monotonic()
    server.stop(timeout=0.3)
    assert not server.alive()
    assert time.monotonic() - started < 5


def test_wait_ready_reports_an_early_exit_with_the_log_tail(tmp_path: Path) -> None:
    server = _python(tmp_path, "print('cannot bind', flush=True); raise SystemExit(3)")
    with pytest.raises(StackError, match=r"(?s)exited with code 3.*cannot bind"):
        server.wait_ready(lambda: False, timeout=10)


def test_wait_ready_gives_up_after_the_timeout_and_stops_the_process(tmp_path: Path) -> None:
    server = _python(tmp_path, "import time; time.sleep(60)")
    with pytest.raises(StackError, match="not ready after"):
        server.wait_ready(lambda: False, timeout=0.2)
    assert not server.alive()


def test_server_is_a_context_manager_that_stops_on_exit(tmp_path: Path) -> None:
    with _python(tmp_path, "import time; time.sleep(60)") as server:
        pid = server.pid
        assert server.alive()
    assert not server.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_children_run_in_their_own_session(tmp_path: Path) -> None:
    # So a terminal's Ctrl-C reaches `raypay up` alone, which then stops them in order.
    with _python(tmp_path, "import time; time.sleep(60)") as server:
        assert os.getsid(server.pid) == server.pid != os.getsid(0)


def test_a_dead_pid_is_not_alive_in_find_stack(tmp_path: Path) -> None:
    from raypay.tools.up import STATE_FILE, find_stack

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / STATE_FILE).write_text(f'{{"pid": {dead.pid}, "api_url": "x"}}')
    assert find_stack(tmp_path) is None


def test_find_stack_returns_the_state_of_a_live_owner(tmp_path: Path) -> None:
    from raypay.tools.up import STATE_FILE, find_stack

    (tmp_path / STATE_FILE).write_text(f'{{"pid": {os.getpid()}, "api_url": "http://x"}}')
    assert find_stack(tmp_path) == {"pid": os.getpid(), "api_url": "http://x"}


@pytest.mark.parametrize("content", [None, "", "not json", "[1, 2]", '{"pid": "1"}'])
def test_find_stack_without_a_usable_state_file_is_none(tmp_path: Path, content: str) -> None:
    from raypay.tools.up import STATE_FILE, find_stack

    if content is not None:
        (tmp_path / STATE_FILE).write_text(content)
    assert find_stack(tmp_path) is None


def test_where_without_a_running_stack_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from raypay.tools import cli

    assert cli.main(["--data-dir", str(tmp_path), "where", "--json"]) == 1
    assert "no raypay stack" in capsys.readouterr().err
