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
from hil.backends.device.framing import FrameReader, encoded_limit
from hil.errors import ConfigError


def serve_stream(emulator: DeviceEmulator, read_fd: int, write_fd: int, faults: Faults | None = None,
                 stop: Any = None, framing: str = "binary", idle_s: float | None = None,
                 between: Callable[[], None] | None = None, injector: FaultInjector | None = None) -> str:
    """Serve requests on file descriptors until EOF, a disconnect fault, ``idle_s`` without a byte or ``stop()``.

    ``framing`` is ``binary`` (AMVM/1 frames; faults apply to replies) or ``scpi`` (text
    commands with IEEE-488.2 blocks, `hil.backends.device.scpi`; no faults). ``between`` is called
    every pass of the loop (at least every 50 ms), e.g. to turn away other clients. ``injector``
    carries fault state across connections (a ``die_after`` device stays dead).

    Returns why it stopped: ``"eof"``, ``"disconnect"``, ``"died"``, ``"idle"`` or ``"stopped"``.
    """
    reader = FrameReader(encoded_limit(emulator.caps.max_frame))
    injector = injector if injector is not None else FaultInjector(faults or Faults())
    scpi = None
    if framing == "scpi":
        from hil.backends.device.emulator.scpi_session import ScpiSession

        scpi = ScpiSession(emulator)
    pending: list[tuple[float, bytes]] = []  # late replies: (send at, bytes)
    heard = time.monotonic()
    while stop is None or not stop():
        if between is not None:
            between()
        timeout = 0.05 if not pending else max(0.0, min(min(t for t, _ in pending) - time.monotonic(), 0.05))
        ready, _, _ = select.select([read_fd], [], [], timeout)
        now = time.monotonic()
        if idle_s is not None and not ready and not pending and now - heard > idle_s:
            return "idle"
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
        heard = now
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
                return "died" if injector.dead else "disconnect"
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
    injector = FaultInjector(faults)
    try:
        while not stop():
            if serve_stream(emulator, master, master, faults, stop, framing, injector=injector) in ("eof", "died"):
                break
    finally:
        os.close(master)
        os.close(slave)


IDLE_TIMEOUT_S = 60.0
"""A TCP client that sends nothing for this long is dropped, so the next one is served."""

BUSY_BINARY = 1012
"""Error code of the busy reply to a second TCP client (binary framing)."""


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def busy_reply(framing: str) -> bytes:
    """What a client gets when another one holds the emulator: one error, then the link closes."""
    message = "device busy: another client is connected; try again when it disconnects"
    if framing == "scpi":
        return f'-310,"{message}"\n'.encode()
    from hil.backends.device.framing import Frame, FrameType

    return Frame(FrameType.ERROR, 0, 0, message.encode(), BUSY_BINARY).encode()


def serve_tcp(emulator: DeviceEmulator, faults: Faults, address: str, announce: Callable[[str], None],
              framing: str = "binary", *, allow_remote: bool = False, idle_s: float = IDLE_TIMEOUT_S,
              warn: Callable[[str], None] | None = None) -> None:
    """Listen on ``HOST:PORT`` (port 0 = any free one), announce it, serve one client at a time.

    A client silent for ``idle_s`` is dropped; one that connects while another is served gets a
    busy reply (`busy_reply`) and is closed. Only loopback addresses are served unless
    ``allow_remote`` (the emulator has no authentication); then ``warn`` is told so.

    Raises:
        ConfigError: A bad address, a non-loopback one without ``allow_remote``, or a port in use.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ConfigError(f"bad --tcp address {address!r}; use HOST:PORT, e.g. 127.0.0.1:5025")
    if not is_loopback(host):
        if not allow_remote:
            raise ConfigError(f"--tcp {address} would let other machines drive the emulator (it has no "
                              f"authentication); serve on 127.0.0.1, or add --allow-remote to mean it")
        if warn is not None:
            warn(f"warning: serving on {address} without authentication: anyone who can reach it can use it")
    server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((host, int(port)))
    except OSError as error:
        server.close()
        raise ConfigError(f"cannot listen on {address}: {error.strerror or error}") from None
    server.listen(4)
    server.settimeout(0.2)
    stop = _stop_on_signals()
    bound_host, bound_port = server.getsockname()[:2]
    announce(f"{bound_host}:{bound_port}")

    def turn_away() -> None:
        ready, _, _ = select.select([server], [], [], 0)
        if not ready:
            return
        try:
            other, _ = server.accept()
        except OSError:
            return
        with other:
            try:
                other.settimeout(0.5)
                other.sendall(busy_reply(framing))
            except OSError:
                pass

    injector = FaultInjector(faults)
    try:
        while not stop():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connection.setblocking(False)
                why = serve_stream(emulator, connection.fileno(), connection.fileno(), faults, stop, framing,
                                   idle_s=idle_s, between=turn_away, injector=injector)
            if why == "died":
                break
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
