"""Serving an emulator: a byte-stream loop over a pty or a TCP socket, and the emulator as a child process."""

from __future__ import annotations

import os
import select
import signal
import socket
import time
import tty
from collections.abc import Callable
from typing import Any

from hil.backends.device.emulator.device import DeviceEmulator
from hil.backends.device.emulator.faults import FaultInjector, Faults
from hil.backends.device.framing import FrameReader
from hil.errors import ConfigError


def serve_stream(emulator: DeviceEmulator, read_fd: int, write_fd: int, faults: Faults | None = None,
                 stop: Any = None, framing: str = "binary") -> str:
    """Serve requests on file descriptors until EOF, a disconnect fault or ``stop()``.

    ``framing`` is ``binary`` (AMVM/1 frames; faults apply to replies) or ``scpi`` (text
    commands with IEEE-488.2 blocks, `hil.backends.device.scpi`; no faults).

    Returns why it stopped: ``"eof"``, ``"disconnect"`` or ``"stopped"``.
    """
    reader = FrameReader()
    injector = FaultInjector(faults or Faults())
    scpi = None
    if framing == "scpi":
        from hil.backends.device.emulator.scpi_session import ScpiSession

        scpi = ScpiSession(emulator)
    pending: list[tuple[float, bytes]] = []  # late replies: (send at, bytes)
    while stop is None or not stop():
        timeout = 0.05 if not pending else max(0.0, min(t for t, _ in pending) - time.monotonic())
        ready, _, _ = select.select([read_fd], [], [], timeout)
        now = time.monotonic()
        for item in [p for p in pending if p[0] <= now]:
            pending.remove(item)
            _write_all(write_fd, item[1])
        if not ready:
            continue
        try:
            data = os.read(read_fd, 1 << 20)
        except BlockingIOError:
            continue
        except OSError:
            return "eof"
        if not data:
            return "eof"
        if scpi is not None:
            for reply in scpi.feed(data):
                _write_all(write_fd, reply)
            continue
        for encoded in reader.feed(data):
            reply = emulator.handle(encoded)
            if reply is None:
                continue
            out, wait, close = injector.apply(reply)
            if close:
                return "disconnect"
            if out is None:
                continue
            if wait > 0:
                pending.append((time.monotonic() + wait, out))
            else:
                _write_all(write_fd, out)
    return "stopped"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[written:]


def _stop_on_signals() -> Callable[[], bool]:
    stopped = {"flag": False}

    def handler(signum: int, frame: object) -> None:
        stopped["flag"] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return lambda: stopped["flag"]


def serve_pty(emulator: DeviceEmulator, faults: Faults, announce: Callable[[str], None],
              framing: str = "binary") -> None:
    """Open a pty in raw mode, announce its path, serve sessions until SIGINT/SIGTERM.

    The emulator keeps its own handle on the terminal side, so hosts may open and close the path
    many times; a disconnect fault drops what is buffered and waits for the next request.
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    os.set_blocking(master, False)
    stop = _stop_on_signals()
    announce(os.ttyname(slave))
    try:
        while not stop():
            if serve_stream(emulator, master, master, faults, stop, framing) == "eof":
                break
    finally:
        os.close(master)
        os.close(slave)


def serve_tcp(emulator: DeviceEmulator, faults: Faults, address: str, announce: Callable[[str], None],
              framing: str = "binary") -> None:
    """Listen on ``HOST:PORT`` (port 0 = any free one), announce it, serve one client at a time."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"bad --tcp address {address!r}; use HOST:PORT, e.g. 127.0.0.1:5025")
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((host, int(port)))
    except OSError as error:
        raise ConfigError(f"cannot listen on {address}: {error.strerror or error}") from None
    server.listen(1)
    server.settimeout(0.2)
    stop = _stop_on_signals()
    bound_host, bound_port = server.getsockname()[:2]
    announce(f"{bound_host}:{bound_port}")
    try:
        while not stop():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connection.setblocking(False)
                serve_stream(emulator, connection.fileno(), connection.fileno(), faults, stop, framing)
    finally:
        server.close()


class EmulatorProcess:
    """``hil device emulate`` in a child process (a pty between two processes is fast; a thread is not).

    Use as a context manager; ``address`` is what the emulator announced (a pty path or HOST:PORT).

    Args:
        args: Arguments after ``hil device emulate`` (e.g. ``["--port", "pty", "--sigma-mul", "0.1"]``).
        timeout: Seconds to wait for the announcement.

    Raises:
        DeviceError: The emulator did not start.
    """

    def __init__(self, *args: str, timeout: float = 30.0) -> None:
        import select
        import subprocess
        import sys

        from hil.backends.device.transport import DeviceError

        self.process = subprocess.Popen([sys.executable, "-m", "hil", "device", "emulate", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        output = self.process.stdout
        assert output is not None  # stdout=PIPE
        ready, _, _ = select.select([output], [], [], timeout)
        line = output.readline().decode().strip() if ready else ""
        if not line:
            self.stop()
            stream = self.process.stderr
            error = stream.read().decode().strip().splitlines() if stream is not None else []
            raise DeviceError(f"the emulator did not start: {error[-1] if error else 'no announcement'}")
        self.address = line

    def stop(self) -> None:
        """Terminate the emulator (kill it if it does not stop within 10 s)."""
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
