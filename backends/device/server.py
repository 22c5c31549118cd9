"""Serve a `DeviceEmulator` over a pseudo-terminal or a loopback TCP socket (blocking)."""

from __future__ import annotations

import os
import signal
import socket
import tty
from collections.abc import Callable

from hil.backends.device.emulator import DeviceEmulator, Faults, serve_stream
from hil.errors import ConfigError


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
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().decode().strip() if ready else ""
        if not line:
            self.stop()
            error = self.process.stderr.read().decode().strip().splitlines()
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
